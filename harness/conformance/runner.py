"""The conformance run: plan the matrix, run each framework's share in worker processes, judge every result.

It reads as plan → pool → rows → journal: `jobs_for` plans each adapter's jobs, `Share`s split them between
workers, the `WorkerPool` runs and watches those, the `Judge` turns each message into rows, and every row goes to
`emit` (the run folder's journal) as soon as it is judged. The runner never names a framework: what an adapter
can do is data on its class, and what it did is what its worker reported.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import Case
from harness.conformance.messages import BatchComputed, Computed, Finished, NotSupported, Raised
from harness.conformance.plan import Cell, Job, Scope, jobs_for
from harness.conformance.rows import Judge
from harness.conformance.worker import worker_main
from harness.store.environment import cache_root
from harness.store.folder import RunStore
from harness.store.schema import CellKey, ConformanceRow
from harness.verdict.conventions import Convention, convention_use
from harness.verdict.oracle import Reference, reference
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Lost, Received, Worker, WorkerPool
from implementations import Adapter

__all__ = ["MAX_RESTARTS", "Emit", "Progress", "Settings", "Share", "run_conformance", "run_into"]

Progress = Callable[[int, int, str], None]  # (done, total, what)
Emit = Callable[[list[ConformanceRow]], None]

MAX_RESTARTS = 5  # a worker that dies takes only the job it was on; after this many deaths, all of its rest
_COMPILED_JOB_COST = 10  # a compiled job builds graphs: roughly ten eager jobs' worth of work


@dataclass(eq=False)
class Share:
    """One worker's share of a framework's jobs, and what is still to come of it."""

    id: str
    framework: str
    jobs: list[Job]
    pending: set[Cell]
    restarts: int = 0
    greeted: bool = False  # it loaded its framework: a death after that is a cell's doing, before it the import's
    worker: Worker | None = None

    def in_progress(self) -> list[Cell]:
        """The job the worker was on when it died or hung (its first job, in the order it runs them, with cells
        still without a result): those cells. The same input would fault again for each reduction."""
        for job in self.jobs:
            cells = [cell for cell in job.cells() if cell in self.pending]
            if cells:
                return cells
        return []

    def restarted(self) -> Share:
        """A fresh share of the cells still pending, for a new worker."""
        return Share(self.id, self.framework, remaining_jobs(self.jobs, self.pending), set(self.pending),
                     restarts=self.restarts + 1)


def remaining_jobs(jobs: list[Job], pending: set[Cell]) -> list[Job]:
    """The jobs narrowed to the cells still pending (a job is one call per reduction)."""
    out = []
    for job in jobs:
        reductions = tuple(c.reduction for c in job.cells() if c in pending)
        if reductions:
            out.append(Job(job.case_index, job.dtype, job.impl, job.device, reductions, job.mode, job.check))
    return out


def split_jobs(framework: str, jobs: list[Job], count: int) -> list[Share]:
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
    return [Share(f"{framework}#{i}" if count > 1 else framework, framework, group,
                  {cell for job in group for cell in job.cells()})
            for i, group in enumerate(groups) if group]


@dataclass
class Settings:
    """How the audit's workers run."""

    jobs: int = 2
    threads: int = 1
    use_cache: bool = True
    silence_timeout: float = 600.0
    memory_limit: int | None = None
    log_dir: Path | None = None


@dataclass
class _Audit:
    """One conformance run in progress: the shares waiting and running, the counts, and what to report."""

    cases: list[Case]
    judge: Judge
    settings: Settings
    emit: Emit
    progress: Progress | None
    pool: WorkerPool
    waiting: list[Share] = field(default_factory=list)
    running: dict[Worker, Share] = field(default_factory=dict)
    references: dict[tuple[int, str], Reference] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=lambda: {"workers": {}, "faults": []})
    total: int = 0
    done: int = 0

    def advance(self, count: int, what: str) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    # ------------------------------------------------------------------------------------------ the plan

    def plan(self, adapters: dict[str, type[Adapter]], dtypes: Sequence[str], devices: Sequence[str],
             scope: Scope, recorded: frozenset[CellKey]) -> None:
        """Every adapter's jobs (less what `recorded` holds): rows at once for what cannot run, shares for the
        rest, biggest first, so that the short ones fill in beside it."""
        for name, adapter in adapters.items():
            jobs = self._still_to_run(list(jobs_for(adapter, self.cases, dtypes, devices, scope)), recorded)
            self.total += sum(len(job.reductions) for job in jobs)
            self.report["workers"][name] = {"available": adapter.is_available(),
                                            "installed_version": adapter.installed_version() or ""}
            runnable = self._runnable(name, adapter, jobs)
            self.judge.compared.update(cell._replace(mode="eager") for job in runnable if job.mode != "eager"
                                       for cell in job.cells())
            self.waiting.extend(split_jobs(name, runnable, self.settings.jobs))
        self.waiting.sort(key=lambda share: -len(share.pending))
        self.advance(self.total - sum(len(share.pending) for share in self.waiting), "unavailable and unsupported")

    def _key(self, cell: Cell) -> CellKey:
        return CellKey(cell.impl, self.cases[cell.case_index].name, cell.dtype, cell.device, cell.reduction,
                       cell.mode, cell.check)

    def _still_to_run(self, jobs: list[Job], recorded: frozenset[CellKey]) -> list[Job]:
        """The jobs narrowed to cells an interrupted run did not record, and the eager cells that a compiled
        cell still to run is compared with (the eager output is not in the journal)."""
        if not recorded:
            return jobs
        compared = {cell._replace(mode="eager") for job in jobs if job.mode != "eager" for cell in job.cells()
                    if self._key(cell) not in recorded}
        pending = {cell for job in jobs for cell in job.cells() if self._key(cell) not in recorded or cell in compared}
        return remaining_jobs(jobs, pending)

    def _runnable(self, name: str, adapter: type[Adapter], jobs: list[Job]) -> list[Job]:
        """The jobs a worker can run; rows for the others (a framework not installed, a dtype it lacks)."""
        if not adapter.is_available():
            why = adapter.unavailable_reason()
            for job in jobs:
                for cell in job.cells():
                    self.emit(self.judge.status_rows(name, cell, "unavailable", "", why))
            return []
        for job in (job for job in jobs if job.dtype not in adapter.dtypes):
            why = f"{name} has no {job.dtype}"
            for cell in job.cells():
                self.emit(self.judge.status_rows(name, cell, "unsupported", "Unsupported", why))
        return [job for job in jobs if job.dtype in adapter.dtypes]

    # ----------------------------------------------------------------------------------- the references

    def compute_references(self) -> None:
        """The exact references, computed here while the workers import their frameworks."""
        began = time.monotonic()
        shares = [*self.waiting, *self.running.values()]
        needed = sorted({(job.case_index, job.dtype) for share in shares for job in share.jobs})
        for count, (index, dtype) in enumerate(needed, 1):
            case = self.cases[index]
            with np.errstate(all="ignore"):  # inf - inf in a sum of infinite losses is the data, not a warning
                self.references[(index, dtype)] = reference(case.inputs(dtype), case.input_form,
                                                            use_cache=self.settings.use_cache)
            if self.progress is not None:
                self.progress(self.done, self.total, f"reference {count}/{len(needed)}")
        self.report["reference_seconds"] = round(time.monotonic() - began, 2)

    # ---------------------------------------------------------------------------------------- the workers

    def start_waiting(self) -> None:
        while self.waiting and len(self.running) < max(1, self.settings.jobs):
            share = self.waiting.pop(0)
            log_dir, use_cache = self.settings.log_dir, self.settings.use_cache
            log_path = None if log_dir is None else str(log_dir / f"{share.id.replace('#', '-')}.log")
            compile_cache = str(cache_root() / "compiled" / share.framework) if use_cache else None
            share.worker = self.pool.start(share.id, worker_main, share.framework, self.settings.threads,
                                           self.cases, share.jobs, log_path, compile_cache)
            self.running[share.worker] = share

    def run(self) -> None:
        """Until every share is done: hand on each message, and watch the workers (deaths, memory, silence)
        at least twice a second, busy or not."""
        self.start_waiting()
        self.compute_references()
        last_check = time.monotonic()
        while self.running or self.waiting:
            event = self.pool.next_event(timeout=1.0)
            if isinstance(event, Received):
                self.handle(self.running[event.worker], event.message)
            elif isinstance(event, Lost):
                self.lose(self.running[event.worker], event.status, event.why)
            if event is None or time.monotonic() - last_check > 0.5:
                for lost in self.pool.watch():
                    self.lose(self.running[lost.worker], lost.status, lost.why)
                self.start_waiting()
                last_check = time.monotonic()

    def handle(self, share: Share, message: Any) -> None:
        match message:
            case Hello(framework=name, versions=versions, devices=devices):
                share.greeted = True
                self.judge.versions[name] = versions.get(name, "")
                self.report["workers"][name].update(versions=versions, devices=devices)
            case LoadFailed():
                self.report["workers"][share.framework]["load_error"] = message.describe()
                share.restarts = MAX_RESTARTS  # it would fail again: every cell gets the error
                self.finish(share, "error", f"{share.framework} failed to load: {message.describe()}")
            case Finished():
                self.finish(share, "crashed", "the worker ended without a result for this cell")
            case Computed() | BatchComputed() | Raised() | NotSupported():
                share.pending.discard(message.cell)
                self.emit(self.rows(share.framework, message))
                self.advance(1, share.framework)

    def rows(self, framework: str, message: Computed | BatchComputed | Raised | NotSupported) -> list[ConformanceRow]:
        """The judged rows of one cell's message; a bug of ours costs only this cell (recorded in its rows)."""
        cell = message.cell
        try:
            with np.errstate(all="ignore"):  # NaN and inf are data here, not accidents
                match message:
                    case NotSupported(message=why):
                        return self.judge.status_rows(framework, cell, "unsupported", "Unsupported", why)
                    case Raised(error_type=error_type, message=text):
                        return self.judge.raised(framework, cell, error_type, text)
                    case BatchComputed(alone=alone, batched=batched):
                        return self.judge.batch(framework, cell, alone, batched)
                    case Computed(output=output):
                        return self.judge.result(framework, cell, output,
                                                 self.references[(cell.case_index, cell.dtype)])
        except Exception as exc:
            return self.judge.status_rows(framework, cell, "error", "HarnessError",
                                          f"the harness failed to judge this result: {type(exc).__name__}: {exc}")
        raise AssertionError(f"unhandled message {message!r}")

    def lose(self, share: Share, status: str, why: str) -> None:
        """A worker died or hung: after it loaded its framework, the job it was on gets the fault and a fresh
        worker takes the rest (up to MAX_RESTARTS times); before, every cell gets it."""
        culprits = share.in_progress() if share.greeted and share.restarts < MAX_RESTARTS else []
        if not culprits:
            self.finish(share, status, why)
            return
        for culprit in culprits:
            self.emit(self.judge.status_rows(share.framework, culprit, status, "WorkerLost", why))
            share.pending.discard(culprit)
        self.advance(len(culprits), share.framework)
        first = culprits[0]
        self.report["faults"].append({"worker": share.id, "status": status, "why": why, "impl": first.impl,
                                      "case": self.cases[first.case_index].name, "dtype": first.dtype,
                                      "mode": first.mode, "cells": len(culprits)})
        self._stopped(share)
        if share.pending:
            self.waiting.insert(0, share.restarted())
        else:
            self._record(share, "done")

    def finish(self, share: Share, status: str, why: str) -> None:
        """The worker is done (or gave up): whatever it left pending gets `status` with the reason."""
        self._stopped(share)
        remaining = sorted(share.pending)
        for cell in remaining:
            self.emit(self.judge.status_rows(share.framework, cell, status, "WorkerLost" if status != "error" else "",
                                             why))
        share.pending = set()
        self.advance(len(remaining), share.framework)
        self._record(share, status if remaining else "done")

    def _stopped(self, share: Share) -> None:
        assert share.worker is not None
        self.running.pop(share.worker, None)
        if share.worker in self.pool.running:
            self.pool.stop(share.worker, grace=30.0)  # a worker that said it finished exits by itself

    def _record(self, share: Share, ended: str) -> None:
        assert share.worker is not None
        self.report["workers"].setdefault(share.framework, {}).setdefault("shards", {})[share.id] = {
            "ended": ended, "seconds": round(time.monotonic() - share.worker.started, 2), "restarts": share.restarts,
        }


def run_conformance(
    cases: Sequence[Case],
    adapters: dict[str, type[Adapter]],
    dtypes: Sequence[str],
    devices: Sequence[str],
    *,
    emit: Emit,
    scope: Scope | None = None,
    conventions: Sequence[Convention] = (),
    settings: Settings | None = None,
    recorded: frozenset[CellKey] = frozenset(),
    run_id: str = "",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the matrix; every row goes to `emit` as soon as it is judged. Returns what the workers reported (and
    the faults, and the seconds spent on references).

    Frameworks that are not installed give `unavailable` rows, dtypes an adapter lacks give `unsupported` rows.
    The rest run in worker processes (each framework's jobs split by case between `settings.jobs` workers), up to
    `settings.jobs` at once, while this process computes the references. Each worker's own output goes to
    `settings.log_dir/<worker>.log` when given.

    Faults: a worker that dies (a signal, an abort) or exceeds `settings.memory_limit` bytes of resident memory
    gives a `crashed` row for the cell it was computing, one silent for `settings.silence_timeout` seconds a
    `timeout` row; a new worker then takes the rest of its cells (up to MAX_RESTARTS times). `recorded` holds
    the cells that an interrupted run already recorded: they are not run again.
    """
    settings = settings or Settings()
    cases = list(cases)
    pool = WorkerPool(silence_timeout=settings.silence_timeout, memory_limit=settings.memory_limit,
                      silence_name="the per-cell time limit")
    audit = _Audit(cases, Judge(cases, dict(adapters), conventions, run_id=run_id), settings, emit, progress, pool)
    try:
        audit.plan(adapters, dtypes, devices, scope or Scope.default(), recorded)
        audit.run()
    finally:
        pool.close()
    return audit.report


def run_into(store: RunStore, cases: list[Case], adapters: dict[str, type[Adapter]],
             conventions: list[Convention], settings: Settings, *, progress: Progress | None = None,
             recorded: frozenset[CellKey] = frozenset()) -> pd.DataFrame:
    """Run (the rest of) an audit into its run folder: rows to the journal as they come, then the table
    (`conformance.parquet`), and meta.json marked complete with what the workers reported."""
    meta = store.read_meta()
    started = time.time()

    def emit(rows: list[ConformanceRow]) -> None:
        store.append([row.record() for row in rows])

    report = run_conformance(cases, adapters, meta["dtypes"], meta["devices"], emit=emit,
                             scope=Scope.everything() if meta.get("full") else Scope.default(), conventions=conventions,
                             settings=settings, recorded=recorded, run_id=meta["run_id"], progress=progress)
    frame = store.consolidate()
    matched, stale = convention_use(conventions, frame)
    store.update_meta(complete=True, wall_seconds=round(time.time() - started, 3), workers=report["workers"],
                      rows=len(frame), stale_conventions=stale, matched_conventions=matched, faults=report["faults"],
                      reference_seconds=report["reference_seconds"])
    frame.attrs["run_dir"] = str(store.path)
    return frame
