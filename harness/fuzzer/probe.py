"""Cases made up as the fuzzer goes, run in the audit's own workers and judged by the audit's own `Judge`.

One worker per framework lives for the whole fuzz run (its imports, compiled programs and warm caches serve
every probe); a probe sends each framework its jobs with the cases they index (`Assign.cases`), computes the
exact references while the workers compute, and judges every answer as an audit would: the same rows, statuses,
documented conventions and signatures, so a failure the fuzzer reports is one the audit replays.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import BadInput, Case
from harness.conformance.messages import Assign, Ready, Stop
from harness.conformance.plan import Cell, Job
from harness.conformance.rows import Judge
from harness.conformance.runner import exact_derivatives, message_rows, remaining_jobs
from harness.conformance.worker import worker_main
from harness.findings.grouping import signature_groups
from harness.findings.signature import NONFINITE_FAILURES, finding_id
from harness.store.environment import cache_root
from harness.store.schema import ConformanceRow
from harness.verdict.conventions import Convention
from harness.verdict.oracle import located_reference
from harness.verdict.tolerance import pass_ulp
from harness.verdict.variants import variant_inputs
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Lost, Received, Worker, WorkerPool
from implementations import Adapter

__all__ = ["Config", "FuzzLoadError", "Prober", "Problem", "jobs_of", "problems", "targets"]

_LOAD_TIMEOUT = 600.0  # seconds a framework may take to import in a fresh worker
_RETRIES = 3  # workers a probe may lose per framework before the rest of its cells get the loss's status


class FuzzLoadError(BadInput):
    """A framework's worker failed to load it: the fuzz run cannot call it (one line, exit 2)."""


@dataclass(frozen=True, slots=True, order=True)
class Config:
    """Where a failure shows: implementation, dtype, reduction, mode, quantity and device."""

    impl: str
    dtype: str
    reduction: str
    mode: str
    quantity: str
    device: str = "cpu"

    def describe(self) -> str:
        return f"{self.impl}, {self.dtype}, {self.reduction}, {self.mode}, {self.quantity}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One signature one row shows: the finding it belongs to, and where and how it showed."""

    key: tuple[str, str, str, str]
    config: Config
    status: str
    check: str
    example: dict[str, Any] = field(compare=False)

    @property
    def finding_id(self) -> str:
        return finding_id(*self.key)


def jobs_of(index: int, config: Config, derivatives: tuple[str, ...] = ()) -> list[Job]:
    """The jobs that show `config` on case `index` as an audit would judge it: eager `none` (whose elements a
    mean's problems join) and the reduction, and the compiled path of the reduction."""
    eager = ("none",) if config.reduction == "none" else ("none", config.reduction)
    jobs = [Job(index, config.dtype, config.impl, config.device, eager, derivatives=derivatives)]
    if config.mode != "eager":
        jobs.append(Job(index, config.dtype, config.impl, config.device, (config.reduction,), mode=config.mode))
    return jobs


def problems(rows: Sequence[ConformanceRow], cases: Sequence[Case], quantities: Sequence[str]) -> list[Problem]:
    """Every alarm signature of the rows (documented conventions are not alarms), each with the row it showed in."""
    records = [row.record() for row in rows if row.quantity in quantities]
    if not records:
        return []
    frame = pd.DataFrame(records)
    found = []
    for key, group in signature_groups(frame, {case.name: case for case in cases}).items():
        if key[0] == "convention":
            continue
        for row, example in zip(group["rows"], group["examples"], strict=True):
            config = Config(row.impl, row.dtype, row.reduction, row.mode, row.quantity, row.device)
            found.append(Problem(key, config, row.status, row.check, {**example, "case": row.case}))  # type: ignore[arg-type]
    return found


def targets(rows: Sequence[ConformanceRow], quantities: Sequence[str]) -> dict[str, float]:
    """What the search maximises, per label: for each quantity, log2 of the worst failing element's ULP error
    over the pass tolerance, and the count of non-finite results where the exact value is finite or the reverse."""
    scores: dict[str, float] = {}
    for row in rows:
        if row.quantity not in quantities or row.status not in ("fail", "nonfinite"):
            continue
        groups = json.loads(row.failures) if row.failures else []
        nonfinite = sum(int(g["count"]) for g in groups if g["mode"] in NONFINITE_FAILURES)
        ulps = [float(g["ulp"]) / pass_ulp(None) for g in groups if g["mode"] not in NONFINITE_FAILURES]
        if not groups and row.status == "fail" and math.isfinite(row.max_ulp_error):  # a reduced loss
            reduced = row.reduction != "none" and row.quantity in ("loss", "grad_fwd")
            ulps.append(row.max_ulp_error / pass_ulp(row.n if reduced else None))
        if ulps and math.isfinite(max(ulps)):
            label = f"{row.quantity}: log2 ULP error over tolerance"
            scores[label] = max(scores.get(label, -math.inf), math.log2(max(max(ulps), 1.0)))
        if nonfinite or (row.status == "nonfinite" and not groups):
            label = f"{row.quantity}: non-finite elements"
            scores[label] = scores.get(label, 0.0) + float(nonfinite or 1)
    return scores


@dataclass
class _Probe:
    """One `Prober.run` in progress: its judge and cases, each framework's jobs in the order sent and cells still
    unanswered, the workers it lost, and its rows."""

    judge: Judge
    cases: tuple[Case, ...]
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    pending: dict[str, set[Cell]] = field(default_factory=dict)
    losses: dict[str, int] = field(default_factory=dict)
    rows: list[ConformanceRow] = field(default_factory=list)


@dataclass
class Prober:
    """The fuzz run's workers, one per framework, and what they have cost."""

    adapters: dict[str, type[Adapter]]
    conventions: Sequence[Convention] = ()
    use_cache: bool = True
    timeout: float = 600.0
    log_dir: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    cells: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    _pool: WorkerPool | None = None
    _workers: dict[str, Worker] = field(default_factory=dict)
    _framework_of: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool = WorkerPool(silence_timeout=self.timeout, silence_name="the per-cell time limit")
        self._framework_of = {impl.impl: name for name, adapter in self.adapters.items()
                              for impl in adapter.implementations}

    def close(self) -> None:
        assert self._pool is not None
        self._pool.close(Stop())
        self._workers = {}

    def framework_of(self, impl: str) -> str:
        return self._framework_of[impl]

    def _worker(self, framework: str) -> Worker:
        """The framework's worker, started (and its greeting awaited) on first use or after a loss."""
        pool = self._pool
        assert pool is not None
        worker = self._workers.get(framework)
        if worker is not None and worker in pool.running:
            return worker
        log = None if self.log_dir is None else str(self.log_dir / f"{framework}-fuzz-{self.restarts[framework]}.log")
        cache = str(cache_root() / "compiled" / framework) if self.use_cache else None
        worker = pool.start(f"{framework}#fuzz", worker_main, framework, 1, [], log, cache)
        event = pool.receive(worker, _LOAD_TIMEOUT)
        message = event.message if isinstance(event, Received) else None
        if isinstance(message, LoadFailed) or not isinstance(message, Hello):
            why = message.describe() if isinstance(message, LoadFailed) else getattr(event, "why", "no greeting")
            raise FuzzLoadError(f"{framework} failed to load in its worker: {why}; fix its installation or leave it "
                                "out of --frameworks")
        self.versions[framework] = message.versions.get(framework, "")
        self._workers[framework] = worker
        return worker

    def run(self, cases: Sequence[Case], jobs: Sequence[Job], use_cache: bool | None = None) -> list[ConformanceRow]:
        """Every job's rows, as an audit judges them (compiled paths against their eager cells, which `jobs` must
        hold). `use_cache`: keep the exact references in the oracle's disk cache (default: the prober's)."""
        judge = Judge(list(cases), self.adapters, self.conventions, run_id="fuzz", versions=dict(self.versions))
        judge.compared.update(cell._replace(mode="eager") for job in jobs if job.mode != "eager"
                              for cell in job.cells())
        probe = _Probe(judge, tuple(cases))
        now = time.monotonic()
        for worker in self._workers.values():  # a worker idle between probes is not silent: no time limit runs
            worker.last_heard = now
        by_framework: dict[str, list[Job]] = {}
        for job in jobs:
            by_framework.setdefault(self.framework_of(job.impl), []).append(job)
        for framework, own in by_framework.items():
            self._send(probe, framework, own)
        self._references(judge, list(cases), jobs, self.use_cache if use_cache is None else use_cache)
        self._collect(probe)
        return probe.rows

    def _send(self, probe: _Probe, framework: str, jobs: list[Job]) -> None:
        assert self._pool is not None
        worker = self._worker(framework)
        worker.last_heard = time.monotonic()
        self._pool.send(worker, Assign(tuple(jobs), probe.cases))
        probe.jobs[framework] = jobs
        probe.pending[framework] = {cell for job in jobs for cell in job.cells()}
        self.calls[framework] += 1
        self.cells[framework] += len(probe.pending[framework])

    def _references(self, judge: Judge, cases: list[Case], jobs: Sequence[Job], use_cache: bool) -> None:
        keys = {judge.reference_key(cell) for job in jobs for cell in job.cells()[:1]}
        with np.errstate(all="ignore"):
            for key in keys:
                judge.references[key] = located_reference(*variant_inputs(cases, key), use_cache=use_cache)[0]
        exact_derivatives(judge, sorted({(job.case_index, job.dtype) for job in jobs if job.derivatives}), use_cache)

    def _collect(self, probe: _Probe) -> None:
        """The workers' answers, judged, until each has said Ready. A worker lost on the way costs the job it was
        on (its first with cells unanswered): those cells get its status, and a fresh worker takes the rest, up to
        _RETRIES times a probe."""
        pool = self._pool
        assert pool is not None
        waiting = set(probe.pending)
        while waiting:
            by_worker = {self._workers[name]: name for name in waiting if name in self._workers}
            event = pool.next_event(timeout=1.0)
            for loss in [event] if isinstance(event, Lost) else pool.watch() if event is None else []:
                name = next((n for n, w in self._workers.items() if w is loss.worker), None)
                if name is None:
                    continue
                self._workers.pop(name)
                self.restarts[name] += 1
                if name in waiting and not self._blame(probe, name, loss):
                    waiting.discard(name)
            if not isinstance(event, Received) or event.worker not in by_worker:
                continue
            name, message = by_worker[event.worker], event.message
            if isinstance(message, Ready):
                waiting.discard(name)
                continue
            probe.pending[name].discard(message.cell)
            probe.rows += self._judged(probe.judge, name, message)

    def _blame(self, probe: _Probe, framework: str, loss: Lost) -> bool:
        """The lost worker's job in progress gets its status; the rest goes to a fresh worker (True) unless the
        probe has lost too many (then all of it gets the status: False)."""
        pending, judge = probe.pending[framework], probe.judge
        culprit = next(([c for c in job.cells() if c in pending] for job in probe.jobs[framework]
                        if any(c in pending for c in job.cells())), [])
        probe.losses[framework] = probe.losses.get(framework, 0) + 1
        given_up = probe.losses[framework] > _RETRIES
        for cell in sorted(pending) if given_up else culprit:
            probe.rows += judge.status_rows(framework, cell, loss.status, "WorkerLost", loss.why)
            if cell.mode == "eager" and cell in judge.compared:
                probe.rows += judge.release(cell)
            pending.discard(cell)
        rest = remaining_jobs(probe.jobs[framework], pending)
        if not rest:
            return False
        self._send(probe, framework, rest)
        return True

    @staticmethod
    def _judged(judge: Judge, framework: str, message: Any) -> list[ConformanceRow]:
        """A cell's rows as the audit's runner judges them, with those of the compiled results held for it."""
        cell = message.cell
        rows = message_rows(judge, framework, message)
        if cell.mode == "eager" and cell in judge.compared:
            rows += judge.release(cell)
        return rows
