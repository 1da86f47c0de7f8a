"""The conformance run: plan the matrix, run each framework in its own worker process, judge every result.

The runner never names a framework: what an adapter can do (dtypes, implementations, modes) is data on its
class, and what it did is what its worker reported.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cases import Case
from harness.conventions import Convention
from harness.judging import CONFORMANCE_COLUMNS, Judge, row_id
from harness.matrix import Cell, Job, Scope, jobs_for
from harness.oracle import Reference, cache_dir, reference
from harness.worker import describe, worker_main
from implementations import Adapter

__all__ = ["CONFORMANCE_COLUMNS", "Progress", "discover", "row_id", "run_conformance"]

Progress = Callable[[int, int, str], None]  # (done, total, what)
Emit = Callable[[list[dict[str, Any]]], None]


def _context() -> Any:
    return mp.get_context("spawn")


def discover(adapters: dict[str, type[Adapter]], threads: int = 1, timeout: float = 120.0) -> dict[str, Any]:
    """Load each installed framework in a worker and return {name: (versions, devices) or an error string}."""
    ctx = _context()
    found: dict[str, Any] = {}
    for name, adapter in adapters.items():
        if not adapter.is_available():
            found[name] = "not installed"
            continue
        channel = ctx.Queue()
        process = ctx.Process(target=describe, args=(name, threads, channel), daemon=True)
        process.start()
        try:
            message = channel.get(timeout=timeout)
        except queue_module.Empty:
            message = ("load_failed", name, "Timeout", f"no answer within {timeout:g} s", "")
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
        found[name] = (message[2], message[3]) if message[0] == "hello" else f"{message[2]}: {message[3]}"
    return found


def run_conformance(
    cases: Sequence[Case],
    adapters: dict[str, type[Adapter]],
    dtypes: Sequence[str],
    devices: Sequence[str],
    *,
    scope: Scope | None = None,
    conventions: Sequence[Convention] = (),
    jobs: int = 2,
    threads: int = 1,
    use_cache: bool = True,
    silence_timeout: float = 600.0,
    log_dir: Path | None = None,
    emit: Emit,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the matrix; every row goes to `emit` as soon as it is judged. Returns what the workers reported and
    which conventions went stale.

    Frameworks that are not installed give `unavailable` rows, dtypes an adapter lacks give `unsupported` rows;
    the rest run in up to `jobs` worker processes at once, each with `threads` threads, while this process
    computes the references. Each worker's own output goes to `log_dir/<framework>.log` when given.
    """
    scope = scope or Scope.default()
    cases = list(cases)
    judge = Judge(cases, dict(adapters), conventions)
    report: dict[str, Any] = {"workers": {}}
    planned: dict[str, list[Job]] = {}
    pending: dict[str, set[Cell]] = {}
    total = 0
    done = 0

    def advance(count: int, what: str) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total, what)

    for name, adapter in adapters.items():
        version = adapter.installed_version() or ""
        all_jobs = list(jobs_for(adapter, cases, dtypes, devices, scope))
        total += sum(len(job.reductions) for job in all_jobs)
        report["workers"][name] = {"available": adapter.is_available(), "installed_version": version}
        if not adapter.is_available():
            why = f"{name} is not installed; install it (pip install 'bce-harness[{name}]')"
            for job in all_jobs:
                for missing in job.cells():
                    emit(judge.status_rows(name, missing, "unavailable", "", why))
            continue
        runnable = [job for job in all_jobs if job.dtype in adapter.dtypes]
        for job in all_jobs:
            if job.dtype not in adapter.dtypes:
                for lacking in job.cells():
                    emit(judge.status_rows(name, lacking, "unsupported", "Unsupported", f"{name} has no {job.dtype}"))
        if runnable:
            planned[name] = runnable
            pending[name] = {cell for job in runnable for cell in job.cells()}
    advance(total - sum(len(cells) for cells in pending.values()), "unavailable and unsupported")

    ctx = _context()
    channel = ctx.Queue()
    # the framework with the most work starts first, so that the short ones fill in beside it
    waiting = sorted(planned, key=lambda n: -len(pending[n]))
    running: dict[str, Any] = {}
    last_heard: dict[str, float] = {}

    def start_workers() -> None:
        while waiting and len(running) < max(1, jobs):
            name = waiting.pop(0)
            log_path = None if log_dir is None else str(log_dir / f"{name}.log")
            compile_cache = str(cache_dir().parent / "compiled" / name) if use_cache else None
            process = ctx.Process(target=worker_main, name=f"bce-{name}", daemon=True,
                                  args=(name, threads, cases, planned[name], channel, log_path, compile_cache))
            process.start()
            running[name] = process
            last_heard[name] = time.monotonic()

    start_workers()

    # The references, computed here while the workers import their frameworks.
    references: dict[tuple[int, str], Reference] = {}
    needed = sorted({(job.case_index, job.dtype) for name in planned for job in planned[name]})
    for count, (index, dtype) in enumerate(needed, 1):
        case = cases[index]
        references[(index, dtype)] = reference(case.inputs(dtype), case.input_form, use_cache=use_cache)
        if progress is not None:
            progress(done, total, f"reference {count}/{len(needed)}")

    def close_worker(name: str, status: str, why: str) -> None:
        process = running.pop(name)
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        remaining = sorted(pending.get(name, set()))
        for cell in remaining:
            emit(judge.status_rows(name, cell, status, "", why))
        pending[name] = set()
        advance(len(remaining), name)
        report["workers"][name]["ended"] = status if remaining else "done"

    while running or waiting:
        try:
            message = channel.get(timeout=1.0)
        except queue_module.Empty:
            now = time.monotonic()
            for name, process in list(running.items()):
                if not process.is_alive():
                    code = process.exitcode
                    why = (f"worker died with signal {-code}" if code is not None and code < 0
                           else f"worker exited with code {code}")
                    close_worker(name, "crashed", why)
                elif now - last_heard[name] > silence_timeout:
                    close_worker(name, "timeout", f"no result for {silence_timeout:g} s")
            start_workers()
            continue
        kind, name = message[0], message[1]
        last_heard[name] = time.monotonic()
        if kind == "hello":
            judge.versions[name] = message[2].get(name, "")
            report["workers"][name].update(versions=message[2], devices=message[3])
        elif kind == "load_failed":
            report["workers"][name]["load_error"] = f"{message[2]}: {message[3]}"
            close_worker(name, "error", f"{name} failed to load: {message[2]}: {message[3]}")
            start_workers()
        elif kind == "done":
            close_worker(name, "crashed", "the worker ended without a result for this cell")
            start_workers()
        else:
            cell: Cell = message[2]
            if kind == "unsupported":
                rows = judge.status_rows(name, cell, "unsupported", "Unsupported", message[3])
            elif kind == "raised":
                rows = judge.raised(name, cell, message[3], message[4])
            elif kind == "batch":
                rows = judge.batch(name, cell, message[3], message[4])
            else:
                rows = judge.result(name, cell, message[3], references[(cell.case_index, cell.dtype)])
            pending[name].discard(cell)
            emit(rows)
            advance(1, name)
    ran = {job.impl for jobs_ in planned.values() for job in jobs_}
    report["stale_conventions"] = [c.id for c in judge.stale(ran)]
    report["matched_conventions"] = dict(judge.matched)
    return report
