"""The worker process: one framework, imported here and nowhere else, running its share of the matrix.

It talks to the runner through its own one-way pipe of plain tuples (no lock shared with other workers), so a
crash, a hang or a kill of one framework cannot touch another or the runner.
"""

from __future__ import annotations

import os
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from cases import Case
from harness.matrix import BATCH_SIZE, Job
from implementations import Adapter, Output, Unsupported, adapter_classes

__all__ = ["adapter_instance", "death", "describe", "one_line", "redirect_output", "worker_main"]


def adapter_instance(framework: str) -> Adapter:
    return adapter_classes()[framework]()


def redirect_output(log_path: str | None) -> None:
    """Send the framework's own chatter (import banners, C++ logging) to a log file, not the user's terminal."""
    if log_path is None:
        return
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)


def death(process: Any) -> str:
    """How a worker process ended, for a `crashed` row: the signal that killed it, or its exit code."""
    code = process.exitcode
    if code is not None and code < 0:
        return f"worker died with signal {-code}"
    return f"worker exited with code {code}"


def worker_main(
    framework: str,
    threads: int,
    cases: list[Case],
    jobs: list[Job],
    channel: Connection,
    log_path: str | None = None,
    compile_cache: str | None = None,
) -> None:
    """Load the framework, run every job, and report each result as it is produced."""
    redirect_output(log_path)
    try:
        adapter = adapter_instance(framework)
        versions = adapter.load(threads, compile_cache)
        devices = adapter.devices()
    except Exception as exc:  # the framework failed to import or configure: every job is an error
        channel.send(("load_failed", framework, type(exc).__name__, f"{exc}"[:2000], traceback.format_exc()[-4000:]))
        return
    channel.send(("hello", framework, versions, devices, os.getpid()))
    for job in jobs:
        case = cases[job.case_index]
        impl = adapter.implementation(job.impl)
        arrays = case.inputs(job.dtype).arrays()
        for cell in job.cells():
            try:
                if job.check == "batch":
                    channel.send(("batch", framework, cell, *_alone_and_batched(adapter, impl, arrays, cell.device)))
                    continue
                output = adapter.compute(impl, arrays, cell.reduction, cell.device, cell.mode)  # type: ignore[arg-type]
            except Unsupported as exc:
                channel.send(("unsupported", framework, cell, str(exc)))
            except Exception as exc:
                channel.send(("raised", framework, cell, type(exc).__name__, one_line(exc)))
            else:
                channel.send(("result", framework, cell, output))
    channel.send(("done", framework))


def one_line(exc: BaseException) -> str:
    """The exception's message without the framework's traceback decorations: its last non-empty line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:500]


def _alone_and_batched(adapter: Adapter, impl: Any, arrays: dict[str, np.ndarray], device: str) -> tuple[Output, ...]:
    """Each element computed alone (a 1-element array), and all of them tiled into one batch of BATCH_SIZE."""
    x, y = arrays["x"].ravel(), arrays["y"].ravel()
    alone = [adapter.compute(impl, {"x": x[i:i + 1], "y": y[i:i + 1]}, "none", device) for i in range(x.size)]
    tiled = np.resize(np.arange(x.size), BATCH_SIZE)
    batched = adapter.compute(impl, {"x": x[tiled], "y": y[tiled]}, "none", device)
    stacked = Output(
        loss=np.concatenate([out.loss for out in alone]),
        grad=np.concatenate([out.grad for out in alone if out.grad is not None]),
        out_dtype=alone[0].out_dtype, grad_dtype=alone[0].grad_dtype, api=alone[0].api,
    )
    return stacked, batched


def describe(framework: str, threads: int, channel: Connection) -> None:
    """Load the framework and report its versions and devices (for `list` and device checks)."""
    redirect_output(os.devnull)
    try:
        adapter = adapter_instance(framework)
        versions = adapter.load(threads)
        channel.send(("hello", framework, versions, adapter.devices(), os.getpid()))
    except Exception as exc:
        channel.send(("load_failed", framework, type(exc).__name__, f"{exc}"[:2000], ""))
