"""The conformance run: plan the matrix, run each framework's work in worker processes, judge every result.

It reads as plan → pool → rows → journal: `jobs_for` plans each adapter's jobs, a `Backlog` holds them in pieces
that workers take one at a time (a `Share` is what one worker holds), the `WorkerPool` runs and watches those,
the `Judge` turns each message into rows, and every row goes to `emit` (the run folder's journal) as soon as it
is judged. The runner never names a framework: what an adapter can do is data on its class, and what it did is
what its worker reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import Case
from harness.conformance.across import side_record
from harness.conformance.messages import Assign, BatchComputed, Computed, NotSupported, Raised, Ready, Stop
from harness.conformance.plan import Cell, Job, Scope, jobs_for
from harness.conformance.profile import Profile
from harness.conformance.relations import Pair, relation_pairs
from harness.conformance.rows import Judge
from harness.conformance.worker import worker_main
from harness.store.environment import cache_root
from harness.store.folder import RunStore
from harness.store.schema import OUTPUTS, CellKey, ConformanceRow
from harness.verdict.conventions import Convention, convention_use
from harness.verdict.derivatives import derivative_reference
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Lost, Received, Worker, WorkerPool
from implementations import Adapter
from implementations.registry import adapter_classes

__all__ = ["MAX_RESTARTS", "Backlog", "Emit", "Progress", "Settings", "Share", "exact_derivatives", "exact_references",
           "message_rows",
           "remaining_jobs", "run_conformance", "run_into", "units_of"]

Progress = Callable[[int, int, str], None]  # (done, total, what)
Emit = Callable[[list[ConformanceRow]], None]
Keep = Callable[[dict[str, Any]], None]  # a kept cell's output record (`side_record`), for the run folder

MAX_RESTARTS = 5  # a dead worker costs only the job it was on; after this many deaths, all of its framework's rest
_COST = {"eager": 1, "batch": 5, "compiled": 10}  # rough weights of a cell: a compiled one builds a graph
_WORTH_A_WORKER = 3.0  # start another worker of a framework when its share of the rest is this many imports


def _signature(case: Case) -> tuple[Any, ...]:
    """The shapes of a case's x and y: what most eager primitives are compiled for (with the dtype). Weights of
    other shapes add a few programs of their own; the cases around them share the rest."""
    return case.x.shape, case.y.shape


def _weight(job: Job) -> int:
    kind = "compiled" if job.mode != "eager" else "batch" if job.check == "batch" else "eager"
    return _COST[kind] * len(job.reductions)


def units_of(jobs: Sequence[Job], cases: Sequence[Case]) -> list[list[Job]]:
    """A framework's jobs in the pieces a worker takes at a time, heaviest first. A piece holds one mode's jobs
    for one dtype and device and one shape of x and y (JAX compiles each eager primitive per shape and dtype: the
    worker that has compiled them serves every case of that shape), or one dtype's batch checks (which share their
    shapes)."""
    pieces: dict[tuple[Any, ...], list[Job]] = {}
    for job in jobs:
        case = cases[job.case_index]
        key = (job.mode, job.dtype, job.device, job.check, () if job.check == "batch" else _signature(case))
        pieces.setdefault(key, []).append(job)
    return sorted(pieces.values(), key=lambda piece: -sum(_weight(job) for job in piece))


@dataclass(eq=False)
class Share:
    """What one worker holds: the jobs assigned to it, in the order it runs them, and the cells still without
    an answer."""

    id: str
    framework: str
    jobs: list[Job] = field(default_factory=list)
    pending: set[Cell] = field(default_factory=set)
    greeted: bool = False  # it loaded its framework: a death after that is a cell's doing, before it the import's
    worker: Worker | None = None

    def assign(self, jobs: list[Job]) -> None:
        self.jobs = [*remaining_jobs(self.jobs, self.pending), *jobs]
        self.pending |= {cell for job in jobs for cell in job.cells()}

    def in_progress(self) -> list[Cell]:
        """The job the worker was on when it died or hung (its first job, in the order it runs them, with cells
        still without a result): those cells. The same input would fault again for each reduction."""
        for job in self.jobs:
            cells = [cell for cell in job.cells() if cell in self.pending]
            if cells:
                return cells
        return []


@dataclass(eq=False)
class Backlog:
    """A framework's work not yet handed to a worker, in the order it goes out, and what its workers cost."""

    framework: str
    units: list[list[Job]]
    restarts: int = 0
    started: int = 0
    live: int = 0
    load_seconds: float | None = None  # its first worker's import, measured
    busy: float = 0.0  # seconds its workers spent on answered cells, and those cells' weight
    done_weight: int = 0

    def weight(self) -> int:
        return sum(_weight(job) for unit in self.units for job in unit)

    def worth_another_worker(self) -> bool:
        """Whether one more worker's part of the rest (at the rate seen so far) pays for its import many times."""
        if not self.units or self.load_seconds is None or not self.done_weight:
            return False
        rest = self.weight() * self.busy / self.done_weight
        return rest / (self.live + 1) > _WORTH_A_WORKER * max(self.load_seconds, 0.5)


def remaining_jobs(jobs: list[Job], pending: set[Cell]) -> list[Job]:
    """The jobs narrowed to the cells still pending (a job is one call per reduction)."""
    out = []
    for job in jobs:
        reductions = tuple(c.reduction for c in job.cells() if c in pending)
        if reductions:
            out.append(replace(job, reductions=reductions))
    return out


@dataclass
class Settings:
    """How the audit's workers run: `jobs` of them at once (the CPUs they share)."""

    jobs: int = 2
    threads: int = 1
    use_cache: bool = True
    silence_timeout: float = 600.0
    memory_limit: int | None = None
    log_dir: Path | None = None


@dataclass
class _Audit:
    """One conformance run in progress: each framework's backlog, the workers running, the counts, the profile,
    and what to report."""

    cases: list[Case]
    judge: Judge
    settings: Settings
    emit: Emit
    progress: Progress | None
    pool: WorkerPool
    keep: Keep | None = None
    backlogs: dict[str, Backlog] = field(default_factory=dict)
    running: dict[Worker, Share] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=lambda: {"workers": {}, "faults": []})
    profile: Profile = field(default_factory=Profile)
    total: int = 0
    done: int = 0

    def advance(self, count: int, what: str) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    # ------------------------------------------------------------------------------------------ the plan

    def plan(self, adapters: dict[str, type[Adapter]], dtypes: Sequence[str], devices: Sequence[str],
             scope: Scope, recorded: frozenset[CellKey]) -> None:
        """Every adapter's jobs (less what `recorded` holds): rows at once for what cannot run, a backlog of
        pieces for the rest. The identities' pairs are found first: a `backend` pair spans two frameworks, of
        which this run may audit one (its side's outputs are then kept for a merge with a run of the other)."""
        peers = {**adapter_classes(), **adapters}  # the other side of a `backend` pair may be in no audit of this run
        pairs = [pair for adapter in peers.values() for pair in relation_pairs(adapter, self.cases, dtypes, devices)]
        audited = {impl.impl for adapter in adapters.values() for impl in adapter.implementations}
        unchecked = self._unchecked_sides([p for p in pairs if {p.base.impl, p.partner.impl} <= audited], recorded)
        planned: set[Cell] = set()
        for name, adapter in adapters.items():
            jobs = self._still_to_run(list(jobs_for(adapter, self.cases, dtypes, devices, scope)), recorded,
                                      unchecked)
            self.total += sum(len(job.reductions) for job in jobs)
            self.report["workers"][name] = {"available": adapter.is_available(),
                                            "installed_version": adapter.installed_version() or ""}
            runnable = self._runnable(name, adapter, jobs)
            self.judge.compared.update(cell._replace(mode="eager") for job in runnable if job.mode != "eager"
                                       for cell in job.cells())
            planned |= {cell for job in runnable for cell in job.cells()}
            if runnable:
                self.backlogs[name] = Backlog(name, units_of(runnable, self.cases))
        self.judge.pair_up(pairs, planned)
        queued = sum(len(job.reductions) for backlog in self.backlogs.values() for unit in backlog.units
                     for job in unit)
        self.advance(self.total - queued, "unavailable and unsupported")

    def _key(self, cell: Cell) -> CellKey:
        return CellKey(cell.impl, self.cases[cell.case_index].name, cell.dtype, cell.device, cell.reduction,
                       cell.mode, cell.check)

    def _unchecked_sides(self, pairs: Sequence[Pair], recorded: frozenset[CellKey]) -> set[Cell]:
        """On a resume, both sides of every identity of the audit whose row the interrupted run did not record
        (outputs are not in the journal), whichever framework each side belongs to. (A side whose other framework
        is not in the audit has no row to wait for: its output was kept before its rows were written.)"""
        if not recorded:
            return set()
        unchecked: set[Cell] = set()
        for pair in pairs:
            cell = Cell(pair.impl, pair.case, pair.base.dtype, pair.base.device, pair.base.reduction, check="relation")
            if self._key(cell)._replace(relation=pair.relation) not in recorded:
                unchecked |= {pair.base, pair.partner}
        return unchecked

    def _still_to_run(self, jobs: list[Job], recorded: frozenset[CellKey], unchecked: set[Cell]) -> list[Job]:
        """The jobs narrowed to cells an interrupted run did not record, the eager cells that a compiled cell
        still to run is compared with, and the sides of the identities still to check."""
        if not recorded:
            return jobs
        compared = {cell._replace(mode="eager") for job in jobs if job.mode != "eager" for cell in job.cells()
                    if self._key(cell) not in recorded}
        pending = {cell for job in jobs for cell in job.cells()
                   if self._key(cell) not in recorded or cell in compared or cell in unchecked}
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
        """The exact references, computed here while the workers import their frameworks: once per (case, dtype),
        for every implementation."""
        began = time.perf_counter()
        jobs = [job for share in self.running.values() for job in share.jobs] + [
            job for backlog in self.backlogs.values() for unit in backlog.units for job in unit]
        stats = self.profile.references
        stats.update(computed=0, cached=0, slow_elements=0)
        for count, total, source, slow in exact_references(self.judge, jobs, self.settings.use_cache):
            stats["computed" if source == "computed" else "cached"] += 1
            stats["slow_elements"] += slow
            if self.progress is not None:
                self.progress(self.done, self.total, f"reference {count}/{total}")
        exact_derivatives(self.judge, sorted({(job.case_index, job.dtype) for job in jobs if job.derivatives}),
                          self.settings.use_cache)
        stats["seconds"] = time.perf_counter() - began
        self.report["reference_seconds"] = round(stats["seconds"], 2)

    # ---------------------------------------------------------------------------------------- the workers


    def fill(self) -> None:
        """Start workers while CPUs are free: first one for each framework with work (the heaviest first), then
        more for the framework with the most left, while another worker pays for its import."""
        while len(self.running) < max(1, self.settings.jobs):
            waiting = [backlog for backlog in self.backlogs.values() if backlog.units]
            fresh = [backlog for backlog in waiting if not backlog.live]
            if fresh:
                self.start(max(fresh, key=Backlog.weight))
                continue
            helped = [backlog for backlog in waiting if backlog.worth_another_worker()]
            if not helped:
                return
            self.start(max(helped, key=Backlog.weight))

    def started_more(self) -> bool:
        """Whether `fill` found work for a worker (when none runs, a backlog may still hold some)."""
        self.fill()
        return bool(self.running)

    def start(self, backlog: Backlog) -> None:
        name = backlog.framework
        share = Share(f"{name}#{backlog.started}", name)
        log_dir, use_cache = self.settings.log_dir, self.settings.use_cache
        log_path = None if log_dir is None else str(log_dir / f"{share.id.replace('#', '-')}.log")
        compile_cache = str(cache_root() / "compiled" / name) if use_cache else None
        share.worker = self.pool.start(share.id, worker_main, name, self.settings.threads, self.cases, log_path,
                                       compile_cache)
        backlog.started += 1
        backlog.live += 1
        self.profile.frameworks[name].workers += 1
        self.running[share.worker] = share
        self.hand_out(share)

    def hand_out(self, share: Share) -> None:
        """The framework's next piece to this worker, or, when there is none, its end."""
        backlog = self.backlogs[share.framework]
        if backlog.units:
            unit = backlog.units.pop(0)
            share.assign(unit)
            assert share.worker is not None
            self.pool.send(share.worker, Assign(tuple(unit)))
        else:
            self.retire(share, "done")

    def run(self) -> None:
        """Until every backlog is done: hand on each message, and watch the workers (deaths, memory, silence)
        at least twice a second, busy or not."""
        self.fill()
        with self.profile.phase("references"):
            self.compute_references()
        last_check = time.monotonic()
        while self.running or self.started_more():
            with self.profile.phase("waiting"):
                event = self.pool.next_event(timeout=1.0)
            if isinstance(event, Received):
                self.handle(self.running[event.worker], event.message)
            elif isinstance(event, Lost):
                self.lose(self.running[event.worker], event.status, event.why)
            if event is None or isinstance(event, Lost) or time.monotonic() - last_check > 0.5:
                for lost in self.pool.watch():
                    self.lose(self.running[lost.worker], lost.status, lost.why)
                self.fill()  # a lost worker's rest waits in its backlog for a fresh one
                last_check = time.monotonic()
        for eager in list(self.judge.held):  # compiled results whose eager cell never answered
            self.answered(eager, [])

    def handle(self, share: Share, message: Any) -> None:
        backlog, profile = self.backlogs[share.framework], self.profile.frameworks[share.framework]
        match message:
            case Hello(framework=name, versions=versions, devices=devices):
                share.greeted = True
                self.judge.versions[name] = versions.get(name, "")
                self.report["workers"][name].update(versions=versions, devices=devices)
                profile.load += message.load_seconds
                profile.devices += message.devices_seconds
                backlog.load_seconds = backlog.load_seconds or message.load_seconds + message.devices_seconds
            case LoadFailed():
                self.report["workers"][share.framework]["load_error"] = message.describe()
                self.give_up(share, "error", f"{share.framework} failed to load: {message.describe()}")
            case Ready():
                profile.cpu[share.id] = message.cpu_seconds
                profile.compiles[share.id] = message.compiles
                profile.peak_bytes = max(profile.peak_bytes, message.peak_bytes)
                self.unanswered(share, "crashed", "the worker ended without a result for this cell")
                self.hand_out(share)
                self.fill()
            case Computed() | BatchComputed() | Raised() | NotSupported():
                share.pending.discard(message.cell)
                mode = "batch" if message.cell.check == "batch" else message.cell.mode
                profile.compute[mode] += message.seconds
                profile.cells[mode] += 1
                backlog.busy += message.seconds
                backlog.done_weight += _COST["compiled" if mode not in ("eager", "batch") else mode]
                with self.profile.timing(share.framework, "judge"):
                    rows = self.rows(share.framework, message)
                if isinstance(message, Computed) and message.cell in self.judge.kept and self.keep is not None:
                    self.keep(side_record(self.judge, share.framework, message.cell, message.output))
                self.answered(message.cell, rows)
                self.advance(1, share.framework)

    def answered(self, cell: Cell, rows: list[ConformanceRow]) -> None:
        """A cell's rows to the journal, and with an eager cell's those of the compiled results held for it."""
        if cell.mode == "eager" and cell in self.judge.compared:
            rows = rows + self.judge.release(cell)
        if rows:
            with self.profile.timing(rows[0].framework, "journal"):
                self.emit(rows)

    def rows(self, framework: str, message: Computed | BatchComputed | Raised | NotSupported) -> list[ConformanceRow]:
        return message_rows(self.judge, framework, message)

    def lose(self, share: Share, status: str, why: str) -> None:
        """A worker died or hung: after it loaded its framework, the job it was on gets the fault and the rest of
        its work goes back to the front of the backlog (up to MAX_RESTARTS times per framework); before, or past
        that, all of the framework's work left gets it."""
        backlog = self.backlogs[share.framework]
        culprits = share.in_progress() if share.greeted and backlog.restarts < MAX_RESTARTS else []
        if not culprits:
            self.give_up(share, status, why)
            return
        for culprit in culprits:
            self.answered(culprit, self.judge.status_rows(share.framework, culprit, status, "WorkerLost", why))
            share.pending.discard(culprit)
        self.advance(len(culprits), share.framework)
        first = culprits[0]
        self.report["faults"].append({"worker": share.id, "status": status, "why": why, "impl": first.impl,
                                      "case": self.cases[first.case_index].name, "dtype": first.dtype,
                                      "mode": first.mode, "cells": len(culprits)})
        backlog.restarts += 1
        rest = remaining_jobs(share.jobs, share.pending)
        if rest:
            backlog.units.insert(0, rest)
        share.pending = set()
        self.retire(share, "lost")

    def give_up(self, share: Share, status: str, why: str) -> None:
        """The framework cannot go on (its import failed or crashed, or its workers died too often): its work
        still to come, this worker's and the backlog's, gets `status` with the reason."""
        backlog = self.backlogs[share.framework]
        share.assign([job for unit in backlog.units for job in unit])
        backlog.units = []
        self.unanswered(share, status, why)
        self.retire(share, status)

    def unanswered(self, share: Share, status: str, why: str) -> None:
        """Rows with `status` for every cell the worker holds without an answer."""
        remaining = sorted(share.pending)
        for cell in remaining:
            self.answered(cell, self.judge.status_rows(
                share.framework, cell, status, "WorkerLost" if status != "error" else "", why))
        share.pending = set()
        self.advance(len(remaining), share.framework)

    def retire(self, share: Share, ended: str) -> None:
        """The worker is done (or lost): it stops, and its lifetime goes to the report and the profile."""
        assert share.worker is not None
        self.running.pop(share.worker, None)
        if share.worker in self.pool.running:
            self.pool.release(share.worker, Stop())  # it exits by itself: no one waits for its teardown
        self.backlogs[share.framework].live -= 1
        seconds = time.monotonic() - share.worker.started
        self.profile.frameworks[share.framework].wall += seconds
        self.report["workers"].setdefault(share.framework, {}).setdefault("shards", {})[share.id] = {
            "ended": ended, "seconds": round(seconds, 2), "restarts": self.backlogs[share.framework].restarts,
        }


def exact_references(judge: Judge, jobs: Sequence[Job], use_cache: bool) -> Iterator[tuple[int, int, str, int]]:
    """The exact references of the jobs' cells into `judge.references`, once per reference key; for each, its
    count, the total, where it came from ("computed" or the cache) and the elements that were slow to compute."""
    needed = sorted({judge.reference_key(cell) for job in jobs for cell in job.cells()[:1]})
    for count, key in enumerate(needed, 1):
        source = judge.locate_reference(key, use_cache)
        yield count, len(needed), source, judge.references[key].slow_elements if source == "computed" else 0


def exact_derivatives(judge: Judge, needed: Sequence[tuple[int, str]], use_cache: bool) -> None:
    """The exact further derivatives of the judge's cases that have them, by (case index, dtype) (or why there
    are none)."""
    for index, dtype in needed:
        case = judge.cases[index]
        try:
            with np.errstate(all="ignore"):
                judge.derivative_references[(index, dtype)] = derivative_reference(
                    case.inputs(dtype), case.input_form, use_cache=use_cache)
        except ValueError as exc:
            judge.derivative_references[(index, dtype)] = str(exc)


def message_rows(judge: Judge, framework: str,
                 message: Computed | BatchComputed | Raised | NotSupported) -> list[ConformanceRow]:
    """The judged rows of one cell's message; a bug of ours costs only this cell (recorded in its rows)."""
    cell = message.cell
    try:
        with np.errstate(all="ignore"):  # NaN and inf are data here, not accidents
            match message:
                case NotSupported(message=why):
                    return judge.status_rows(framework, cell, "unsupported", "Unsupported", why)
                case Raised(error_type=error_type, message=text):
                    return judge.raised(framework, cell, error_type, text)
                case BatchComputed(alone=alone, batched=batched):
                    return judge.batch(framework, cell, alone, batched)
                case Computed(output=output):
                    return judge.result(framework, cell, output)
    except Exception as exc:
        return judge.status_rows(framework, cell, "error", "HarnessError",
                                 f"the harness failed to judge this result: {type(exc).__name__}: {exc}")
    raise AssertionError(f"unhandled message {message!r}")


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
    keep: Keep | None = None,
) -> dict[str, Any]:
    """Run the matrix; every row goes to `emit` as soon as it is judged. Returns what the workers reported, the
    faults, and the run's `profile` (where the time went).

    Frameworks that are not installed give `unavailable` rows, dtypes an adapter lacks give `unsupported` rows.
    The rest run in worker processes, `settings.jobs` at once, while this process computes the references: each
    framework gets a worker, the heaviest first, and a framework with much left gets more as CPUs free up; a
    worker takes its framework's work one piece (`units_of`) at a time. Each worker's own output goes to
    `settings.log_dir/<worker>.log` when given.

    Faults: a worker that dies (a signal, an abort) or exceeds `settings.memory_limit` bytes of resident memory
    gives a `crashed` row for the cell it was computing, one silent for `settings.silence_timeout` seconds a
    `timeout` row; a new worker then takes the rest of its cells (up to MAX_RESTARTS times). `recorded` holds
    the cells that an interrupted run already recorded: they are not run again. `keep` receives the output of
    every cell an identity across frameworks compares (a merge with another run checks it).
    """
    settings = settings or Settings()
    cases = list(cases)
    began, cpu = time.perf_counter(), time.process_time()
    pool = WorkerPool(silence_timeout=settings.silence_timeout, memory_limit=settings.memory_limit,
                      silence_name="the per-cell time limit")
    audit = _Audit(cases, Judge(cases, dict(adapters), conventions, run_id=run_id), settings, emit, progress, pool,
                   keep)
    try:
        with audit.profile.phase("plan"):
            audit.plan(adapters, dtypes, devices, scope or Scope.default(), recorded)
        audit.run()
    finally:
        pool.close(wait=False)  # the workers' teardown runs on while this process writes the run folder
    audit.profile.main["run"] = time.perf_counter() - began
    audit.profile.main["cpu"] = time.process_time() - cpu
    return {**audit.report, "profile": audit.profile.as_dict()}


def run_into(store: RunStore, cases: list[Case], adapters: dict[str, type[Adapter]],
             conventions: list[Convention], settings: Settings, *, progress: Progress | None = None,
             recorded: frozenset[CellKey] = frozenset(), setup_seconds: float = 0.0) -> pd.DataFrame:
    """Run (the rest of) an audit into its run folder: rows to the journal as they come, then the table
    (`conformance.parquet`), and meta.json marked complete with what the workers reported and the profile
    (`setup_seconds`: what the caller spent before, on the cases, the environment and the folder)."""
    meta = store.read_meta()
    started = time.time()

    def emit(rows: list[ConformanceRow]) -> None:
        store.append([row.record() for row in rows])

    def keep(record: dict[str, Any]) -> None:
        store.append([record], OUTPUTS)

    report = run_conformance(cases, adapters, meta["dtypes"], meta["devices"], emit=emit,
                             scope=Scope.everything() if meta.get("full") else Scope.default(), conventions=conventions,
                             settings=settings, recorded=recorded, run_id=meta["run_id"], progress=progress,
                             keep=keep)
    began = time.perf_counter()
    if (store.path / OUTPUTS).is_file():
        store.sync(OUTPUTS)
    frame = store.consolidate()
    compute_dtypes = {impl.impl: impl.compute_dtype for adapter in adapters.values()
                      for impl in adapter.implementations}
    matched, stale = convention_use(conventions, frame, compute_dtypes)
    profile = report["profile"]
    profile["main"].update(consolidate_s=round(time.perf_counter() - began, 2), setup_s=round(setup_seconds, 2))
    store.update_meta(complete=True, wall_seconds=round(time.time() - started, 3), workers=report["workers"],
                      rows=len(frame), stale_conventions=stale, matched_conventions=matched, faults=report["faults"],
                      reference_seconds=report["reference_seconds"], profile=profile)
    frame.attrs["run_dir"] = str(store.path)
    return frame
