"""The conformance run: plan the matrix, run each framework in its own worker process, judge every result.

The runner never names a framework: what an adapter can do (dtypes, implementations, modes) is data on its
class, and what it did is what its worker reported.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

import numpy as np

from cases import Case
from harness.conventions import Convention
from harness.judging import CONFORMANCE_COLUMNS, Judge, row_id
from harness.matrix import Cell, Job, Scope, jobs_for
from harness.oracle import Reference, cache_dir, reference
from harness.worker import death, describe, worker_main
from implementations import Adapter

__all__ = ["CONFORMANCE_COLUMNS", "CellKey", "Progress", "discover", "row_id", "run_conformance"]

Progress = Callable[[int, int, str], None]  # (done, total, what)
CellKey = tuple[str, str, str, str, str, str, str]  # impl, case name, dtype, device, reduction, mode, check
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
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(target=describe, args=(name, threads, sender), daemon=True)
        process.start()
        sender.close()
        try:
            message = receiver.recv() if receiver.poll(timeout) else (
                "load_failed", name, "Timeout", f"no answer within {timeout:g} s", "")
        except EOFError:
            message = ("load_failed", name, "Crashed", f"the worker died (exit code {process.exitcode})", "")
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
        found[name] = (message[2], message[3]) if message[0] == "hello" else f"{message[2]}: {message[3]}"
    return found


@dataclass
class _Worker:
    """One worker process: a framework and its share of the jobs."""

    id: str
    framework: str
    jobs: list[Job]
    pending: set[Cell]
    process: Any = None
    restarts: int = 0
    greeted: bool = False  # it loaded its framework: a death after that is a cell's doing, before it the import's
    channel: Connection | None = None
    started: float = 0.0
    last_heard: float = 0.0


_COMPILED_JOB_COST = 10  # a compiled job builds graphs: roughly ten eager jobs' worth of work


def _shards(framework: str, jobs: list[Job], count: int) -> list[_Worker]:
    """Split a framework's jobs between `count` workers by case: all of a case's jobs stay in one worker (its
    compile caches serve the case's shapes, and its eager results come before the compiled ones they are
    compared with); cases go, largest first, to the least loaded worker."""
    work: Counter[int] = Counter()
    for job in jobs:
        work[job.case_index] += _COMPILED_JOB_COST if job.mode != "eager" else 1
    count = max(1, min(count, len(work)))
    load = [0] * count
    share: dict[int, int] = {}
    for case, cost in sorted(work.items(), key=lambda item: -item[1]):
        share[case] = load.index(min(load))
        load[share[case]] += cost
    groups: list[list[Job]] = [[] for _ in range(count)]
    for job in jobs:
        groups[share[job.case_index]].append(job)
    return [
        _Worker(f"{framework}#{i}" if count > 1 else framework, framework, group,
                {cell for job in group for cell in job.cells()})
        for i, group in enumerate(groups) if group
    ]


MAX_RESTARTS = 5  # a worker that dies takes only the job it was on; after this many deaths, all of its rest


def _in_progress(worker: _Worker) -> list[Cell]:
    """The job a worker was on when it died or hung (its first job, in the order it runs them, with cells still
    without a result): those cells. The same input would fault again for each reduction."""
    for job in worker.jobs:
        cells = [cell for cell in job.cells() if cell in worker.pending]
        if cells:
            return cells
    return []


def _remaining_jobs(jobs: list[Job], pending: set[Cell]) -> list[Job]:
    """The jobs narrowed to the cells still pending (a job is one call per reduction)."""
    out = []
    for job in jobs:
        reductions = tuple(c.reduction for c in job.cells() if c in pending)
        if reductions:
            out.append(Job(job.case_index, job.dtype, job.impl, job.device, reductions, job.mode, job.check))
    return out


def resident_bytes(pid: int) -> int:
    """A process's resident set (0 when it is gone or the OS has no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


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
    memory_limit: int | None = None,
    recorded: frozenset[CellKey] = frozenset(),
    log_dir: Path | None = None,
    emit: Emit,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the matrix; every row goes to `emit` as soon as it is judged. Returns what the workers reported (and
    the faults, and the seconds spent on references).

    Frameworks that are not installed give `unavailable` rows, dtypes an adapter lacks give `unsupported` rows.
    The rest run in worker processes (each framework's jobs split by case between `jobs` workers), up to `jobs`
    at once, each with `threads` threads, while this process computes the references. Each worker's own output
    goes to `log_dir/<worker>.log` when given.

    Faults: a worker that dies (a signal, an abort) or exceeds `memory_limit` bytes of resident memory gives a
    `crashed` row for the cell it was computing, one silent for `silence_timeout` seconds a `timeout` row; a new
    worker then takes the rest of its cells (up to MAX_RESTARTS times). `recorded` holds the cells (impl, case name,
    dtype, device, reduction, mode, check) that an interrupted run already recorded: they are not run again.
    """
    scope = scope or Scope.default()
    cases = list(cases)
    judge = Judge(cases, dict(adapters), conventions)
    report: dict[str, Any] = {"workers": {}, "faults": []}
    workers: list[_Worker] = []
    total = 0
    done = 0

    def advance(count: int, what: str) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total, what)

    def key(cell: Cell) -> CellKey:
        return (cell.impl, cases[cell.case_index].name, cell.dtype, cell.device, cell.reduction, cell.mode,
                cell.check)

    compiled_pending = set()  # eager cells that a pending compiled cell is compared with: run again if done

    for name, adapter in adapters.items():
        version = adapter.installed_version() or ""
        all_jobs = list(jobs_for(adapter, cases, dtypes, devices, scope))
        if recorded:
            compiled_pending |= {cell._replace(mode="eager") for job in all_jobs if job.mode != "eager"
                                 for cell in job.cells() if key(cell) not in recorded}
            all_jobs = _remaining_jobs(all_jobs, {cell for job in all_jobs for cell in job.cells()
                                                  if key(cell) not in recorded or cell in compiled_pending})
        total += sum(len(job.reductions) for job in all_jobs)
        report["workers"][name] = {"available": adapter.is_available(), "installed_version": version}
        if not adapter.is_available():
            why = f"{name} is not installed; install it (pip install 'bce-harness[{name}]')"
            for job in all_jobs:
                for missing in job.cells():
                    emit(judge.status_rows(name, missing, "unavailable", "", why))
            continue
        for job in all_jobs:
            if job.dtype not in adapter.dtypes:
                for lacking in job.cells():
                    emit(judge.status_rows(name, lacking, "unsupported", "Unsupported", f"{name} has no {job.dtype}"))
        runnable = [job for job in all_jobs if job.dtype in adapter.dtypes]
        judge.compared.update(cell._replace(mode="eager") for job in runnable if job.mode != "eager"
                              for cell in job.cells())
        if runnable:
            workers.extend(_shards(name, runnable, jobs))
    advance(total - sum(len(worker.pending) for worker in workers), "unavailable and unsupported")

    ctx = _context()
    # the biggest share starts first, so that the short ones fill in beside it
    waiting = sorted(workers, key=lambda w: -len(w.pending))
    running: dict[str, _Worker] = {}

    def start_workers() -> None:
        while waiting and len(running) < max(1, jobs):
            worker = waiting.pop(0)
            log_path = None if log_dir is None else str(log_dir / f"{worker.id.replace('#', '-')}.log")
            compile_cache = str(cache_dir().parent / "compiled" / worker.framework) if use_cache else None
            receiver, sender = ctx.Pipe(duplex=False)
            worker.process = ctx.Process(
                target=worker_main, name=f"bce-{worker.id}", daemon=True,
                args=(worker.framework, threads, cases, worker.jobs, sender, log_path, compile_cache))
            worker.process.start()
            sender.close()  # the worker holds the only writing end: its death closes the pipe
            worker.channel, worker.started = receiver, time.monotonic()
            worker.last_heard = worker.started
            running[worker.id] = worker

    start_workers()

    # The references, computed here while the workers import their frameworks.
    began = time.monotonic()
    references: dict[tuple[int, str], Reference] = {}
    needed = sorted({(job.case_index, job.dtype) for worker in workers for job in worker.jobs})
    for count, (index, dtype) in enumerate(needed, 1):
        case = cases[index]
        with np.errstate(all="ignore"):  # inf - inf in a sum of infinite losses is the data, not a warning
            references[(index, dtype)] = reference(case.inputs(dtype), case.input_form, use_cache=use_cache)
        if progress is not None:
            progress(done, total, f"reference {count}/{len(needed)}")
    report["reference_seconds"] = round(time.monotonic() - began, 2)

    def close_worker(worker: _Worker, status: str, why: str) -> None:
        running.pop(worker.id)
        assert worker.channel is not None
        worker.channel.close()
        worker.process.join(timeout=30)  # a worker that said "done" exits by itself
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=10)
        if status in ("crashed", "timeout") and worker.greeted and worker.restarts < MAX_RESTARTS:
            culprits = _in_progress(worker)
            if culprits:  # that job is the fault's; a fresh worker takes the rest
                for culprit in culprits:
                    emit(judge.status_rows(worker.framework, culprit, status, "WorkerLost", why))
                    worker.pending.discard(culprit)
                advance(len(culprits), worker.framework)
                first = culprits[0]
                report["faults"].append({"worker": worker.id, "status": status, "why": why, "impl": first.impl,
                                         "case": cases[first.case_index].name, "dtype": first.dtype,
                                         "mode": first.mode, "cells": len(culprits)})
                if worker.pending:
                    restarted = _Worker(worker.id, worker.framework, _remaining_jobs(worker.jobs, worker.pending),
                                        set(worker.pending), restarts=worker.restarts + 1)
                    waiting.insert(0, restarted)
                    return
        remaining = sorted(worker.pending)
        for cell in remaining:
            emit(judge.status_rows(worker.framework, cell, status, "WorkerLost" if status != "error" else "", why))
        worker.pending = set()
        advance(len(remaining), worker.framework)
        report["workers"].setdefault(worker.framework, {}).setdefault("shards", {})[worker.id] = {
            "ended": status if remaining else "done", "seconds": round(time.monotonic() - worker.started, 2),
            "restarts": worker.restarts,
        }

    def check_workers() -> None:
        now = time.monotonic()
        for worker in list(running.values()):
            assert worker.channel is not None
            if not worker.process.is_alive() and not worker.channel.poll():
                close_worker(worker, "crashed", death(worker.process))
            elif now - worker.last_heard > silence_timeout:
                close_worker(worker, "timeout", f"no result for {silence_timeout:g} s (the per-cell time limit)")
            elif memory_limit is not None and (used := resident_bytes(worker.process.pid)) > memory_limit:
                worker.process.kill()
                close_worker(worker, "crashed", f"killed at {used / 2**30:.1f} GiB resident, over the memory "
                                                f"limit of {memory_limit / 2**30:.1f} GiB")

    def next_message() -> tuple[_Worker, tuple[Any, ...]] | None:
        """The next message from any worker, or None after a quiet second."""
        by_channel = {worker.channel: worker for worker in running.values() if worker.channel is not None}
        for ready in wait(list(by_channel), timeout=1.0):
            channel = cast(Connection, ready)
            worker = by_channel[channel]
            try:
                message: tuple[Any, ...] = channel.recv()
                return worker, message
            except (EOFError, OSError):  # the pipe closed: the worker is gone
                worker.process.join(timeout=5)
                close_worker(worker, "crashed", death(worker.process))
                return None
        return None

    def judged(kind: str, name: str, cell: Cell, message: tuple[Any, ...]) -> list[dict[str, Any]]:
        if kind == "unsupported":
            return judge.status_rows(name, cell, "unsupported", "Unsupported", message[3])
        if kind == "raised":
            return judge.raised(name, cell, message[3], message[4])
        if kind == "batch":
            return judge.batch(name, cell, message[3], message[4])
        return judge.result(name, cell, message[3], references[(cell.case_index, cell.dtype)])

    def handle(worker: _Worker, message: tuple[Any, ...]) -> None:
        kind, name = message[0], worker.framework
        worker.last_heard = time.monotonic()
        if kind == "hello":
            worker.greeted = True
            judge.versions[name] = message[2].get(name, "")
            report["workers"][name].update(versions=message[2], devices=message[3])
        elif kind == "load_failed":
            report["workers"][name]["load_error"] = f"{message[2]}: {message[3]}"
            worker.restarts = MAX_RESTARTS  # it would fail again: every cell gets the error
            close_worker(worker, "error", f"{name} failed to load: {message[2]}: {message[3]}")
        elif kind == "done":
            close_worker(worker, "crashed", "the worker ended without a result for this cell")
        else:
            cell: Cell = message[2]
            try:
                with np.errstate(all="ignore"):  # NaN and inf are data here, not accidents
                    rows = judged(kind, name, cell, message)
            except Exception as exc:  # a bug of ours must not cost the rest of the run: record it in the row
                rows = judge.status_rows(name, cell, "error", "HarnessError",
                                         f"the harness failed to judge this result: {type(exc).__name__}: {exc}")
            worker.pending.discard(cell)
            emit(rows)
            advance(1, name)

    last_check = time.monotonic()
    while running or waiting:
        received = next_message()
        if received is not None:
            handle(*received)
        if received is None or time.monotonic() - last_check > 0.5:  # busy or not, watch deaths, memory, silence
            check_workers()
            start_workers()
            last_check = time.monotonic()
    return report
