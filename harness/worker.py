"""The worker process: one framework, imported here and nowhere else, running its share of the matrix.

It talks to the runner through a queue of plain tuples; a crash or a thread pool of one framework cannot
touch another or the runner.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from cases import Case
from implementations import Adapter, Unsupported, adapter_classes

__all__ = ["Job", "worker_main"]


@dataclass(frozen=True, slots=True)
class Job:
    """One (case, dtype, implementation, device) with the reductions to run."""

    case_index: int
    dtype: str
    impl: str
    device: str
    reductions: tuple[str, ...]


def _adapter(framework: str) -> Adapter:
    return adapter_classes()[framework]()


def _redirect_output(log_path: str | None) -> None:
    """Send the framework's own chatter (import banners, C++ logging) to a log file, not the user's terminal."""
    if log_path is None:
        return
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)


def worker_main(
    framework: str,
    threads: int,
    cases: list[Case],
    jobs: list[Job],
    queue: Queue[Any],
    log_path: str | None = None,
    compile_cache: str | None = None,
) -> None:
    """Load the framework, run every job, and report each result as it is produced."""
    _redirect_output(log_path)
    try:
        adapter = _adapter(framework)
        versions = adapter.load(threads, compile_cache)
        devices = adapter.devices()
    except Exception as exc:  # the framework failed to import or configure: every job is an error
        queue.put(("load_failed", framework, type(exc).__name__, f"{exc}"[:2000], traceback.format_exc()[-4000:]))
        return
    queue.put(("hello", framework, versions, devices, os.getpid()))
    for job in jobs:
        case = cases[job.case_index]
        impl = adapter.implementation(job.impl)
        arrays = case.inputs(job.dtype).arrays()
        for reduction in job.reductions:
            key = (job.impl, job.case_index, job.dtype, job.device, reduction)
            try:
                output = adapter.compute(impl, arrays, reduction, job.device)  # type: ignore[arg-type]
            except Unsupported as exc:
                queue.put(("unsupported", framework, key, str(exc)))
            except Exception as exc:
                queue.put(("raised", framework, key, type(exc).__name__, f"{exc}"[:2000]))
            else:
                queue.put(("result", framework, key, output))
    queue.put(("done", framework))


def describe(framework: str, threads: int, queue: Queue[Any]) -> None:
    """Load the framework and report its versions and devices (for `list` and device checks)."""
    _redirect_output(os.devnull)
    try:
        adapter = _adapter(framework)
        versions = adapter.load(threads)
        queue.put(("hello", framework, versions, adapter.devices(), os.getpid()))
    except Exception as exc:
        queue.put(("load_failed", framework, type(exc).__name__, f"{exc}"[:2000], ""))
