"""The benchmark run: a few worker processes per framework, all pinned to the same CPUs, timed in interleaved
sweeps.

For each (device, dtype, size) the workers first prepare every configuration (inputs on the device, the first
call timed alone into `compile_s`, one call's peak memory, pytest-benchmark's calibration), then take turns:
sweep after sweep, one block of rounds per configuration, frameworks alternating (A B C D A B C D …) and the
starting point rotating, so that a slow minute of the machine falls on every framework alike. Ratios to the
fastest are taken within each sweep, side by side, and their spread across sweeps is kept. A STREAM-style read of
the same bytes, measured in the same sweeps, is the bandwidth baseline for the roofline.

Each framework runs in `processes` worker processes (default 3, as pyperf spreads its values over processes),
and sweep s is timed in process s mod `processes`. The same code can be 30–50 % slower in one process than in
the next for the whole of its life (memory layout, where the allocator's pages fall); with one process that
difference would be the run's, and a rerun would look like a regression. With several, it is inside the samples.
The first process calibrates; the others time the same rounds and iterations after one block of warm-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd

from harness.benchmark.kernel import KernelUnavailable, build_kernel
from harness.benchmark.measurements import Key, Measurements, group_keys, groups_of, journal_what, kernel_keys
from harness.benchmark.messages import CrossCheck, Failed, OwnTimed, Prepare, Prepared, Release, Stop, TimeBlock, Timed
from harness.benchmark.plan import KERNEL, BenchConfig, Group, KernelConfig, ReadConfig
from harness.benchmark.rows import Timings, as_frame, bench_rows, conformance_status
from harness.benchmark.stability import disturbances, retimed_with
from harness.benchmark.timing import BlockOptions, benchmark_document
from harness.benchmark.worker import bench_worker_main
from harness.store.folder import RunStore
from harness.store.schema import BENCH_COLUMNS, BENCH_JOURNAL
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Lost, Received, Worker, WorkerPool
from implementations import Adapter

__all__ = ["DEFAULT_PROCESSES", "BenchResult", "run_bench", "run_into"]

Progress = Callable[[int, int, str], None]
Journal = Callable[[dict[str, Any]], None]
DEFAULT_PROCESSES = 3  # worker processes per framework: a process's own speed is sampled, not taken as the run's


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    entries: list[dict[str, Any]]  # pytest-benchmark JSON benchmarks, every round
    workers: dict[str, Any]
    baselines: list[dict[str, Any]]
    kernel: dict[str, Any]  # the speed-of-light kernel: its build (or why there is none) and its times
    checks: list[dict[str, Any]]  # per group: why it was re-timed, if it was


@dataclass(eq=False)
class _Process:
    """One worker process of a framework: "torch", or "torch (process 2 of 3)"."""

    worker: Worker
    name: str
    index: int
    hello: Hello | None = None
    failed: str = ""  # why it can no longer answer


def _cross_checked(keys: dict[str, list[Key]]) -> set[BenchConfig]:
    """One configuration per framework for its own timer: its eager forward if it has one, else its first."""
    chosen: set[BenchConfig] = set()
    for team in keys.values():
        configs = [key for key in team if isinstance(key, BenchConfig)]
        preferred = [c for c in configs if c.mode == "eager" and c.direction == "forward"]
        if configs:
            chosen.add((preferred or configs)[0])
    return chosen


def _interleaved(keys_by_framework: dict[str, list[Key]], sweep: int) -> list[tuple[str, Key]]:
    """A B C D A B C D …: one configuration of each framework in turn; the first framework rotates per sweep."""
    names = list(keys_by_framework)
    shift = sweep % len(names) if names else 0
    names = names[shift:] + names[:shift]
    order: list[tuple[str, Key]] = []
    for group in zip_longest(*(keys_by_framework[name] for name in names)):
        order.extend((name, key) for name, key in zip(names, group, strict=True) if key is not None)
    return order


@dataclass
class _Bench:
    """One benchmark in progress: the frameworks' processes, what they measured, and the progress count."""

    pool: WorkerPool
    timings: Timings
    timeout: float
    measured: Measurements
    journal: Journal | None
    progress: Progress | None
    teams: dict[str, list[_Process]] = field(default_factory=dict)
    total: int = 0
    done: int = 0

    def start(self, frameworks: Sequence[str], cpus: list[int], threads: int, seed: int,
              log_dir: Path | None) -> None:
        """Every framework's processes at once (they import their frameworks side by side), then their hellos."""
        count = self.timings.processes
        for name in frameworks:
            self.teams[name] = [
                _Process(self.pool.start(f"bench-{name}-{i}", bench_worker_main, name, cpus, threads, seed,
                                         self.timings.options,
                                         None if log_dir is None else str(log_dir / f"bench-{name}-{i}.log")),
                         name if count == 1 else f"{name} (process {i + 1} of {count})", i)
                for i in range(count)]
        for process in (p for team in self.teams.values() for p in team):
            self._greeted(process, self.pool.receive(process.worker, self.timeout))

    def _greeted(self, process: _Process, event: Received | Lost) -> None:
        match event:
            case Received(message=Hello() as hello):
                process.hello = hello
            case Received(message=LoadFailed() as failed):
                process.failed = f"{process.name} failed to load: {failed.describe()}"
                self.pool.stop(process.worker)
            case Lost(why=why):
                process.failed = f"the {process.name} {why}"
            case Received(message=other):
                process.failed = f"{process.name} said {type(other).__name__} instead of hello"

    def advance(self, what: str, skipped: bool = False) -> None:
        """One step done; `skipped`: a preparation failed, so its sweeps are no longer to be done either."""
        self.done += 1
        self.total -= self.timings.sweeps if skipped else 0
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    def ask(self, process: _Process, request: Any) -> Any:
        """One request and its reply; a process that died or went silent answers `Failed("WorkerLost", why)`."""
        if process.failed:
            return Failed("WorkerLost", process.failed)
        match self.pool.ask(process.worker, request, self.timeout):
            case Received(message=reply):
                return reply
            case Lost(why=why):
                process.failed = f"the {process.name} {why}"
        return Failed("WorkerLost", process.failed)

    def prepare(self, team: list[_Process], config: Key) -> Prepared | Failed:
        """Prepare in every process of a framework: the first calibrates, the others take its rounds and
        iterations. The first failure is the answer, and a framework that lost a process has nothing more to
        prepare. `compile_s` is the first process's first call: the later processes would find PyTorch
        Inductor's on-disk cache filled by it."""
        lost = [process.failed for process in team if process.failed]
        if lost:
            return Failed("WorkerLost", lost[0])
        first = self.ask(team[0], Prepare(config))
        if not isinstance(first, Prepared):
            return first
        for process in team[1:]:
            reply = self.ask(process, Prepare(config, (first.rounds_per_block, first.iterations)))
            if not isinstance(reply, Prepared):
                return reply
        return first

    def note(self, key: Key, reply: Prepared | Timed | Failed, event: str, **extra: Any) -> bool:
        """Keep a reply (and journal it, so an interrupted run keeps its rounds); True when it is a result."""
        ok = self.measured.note(key, reply)
        if self.journal is not None:
            outcome = {"error": list(self.measured.problems[key])} if isinstance(reply, Failed) else (
                reply.record() if isinstance(reply, Prepared) else {"iterations": reply.iterations,
                                                                    "data": list(reply.data)})
            self.journal({"event": event, **journal_what(key), **extra, **outcome})
        return ok

    def time_group(self, group: Group, members: list[BenchConfig]) -> None:
        """Prepare every configuration of the group, its reads and the kernel, then the sweeps; time what looks
        disturbed once more (stability.py), mark what stays so; then release."""
        keys: dict[str, list[Key]] = {name: [] for name in self.teams}
        reads = [ReadConfig(name, *group) for name in dict.fromkeys(c.framework for c in members)]
        ordered: list[Key] = [*reads, *kernel_keys(group, members), *members]
        for key in ordered:
            ready = self.note(key, self.prepare(self.teams[key.framework], key), "prepared")
            if ready:
                keys[key.framework].append(key)
            self.advance(f"prepare {key.label()}", skipped=not ready)
        cross_checked = _cross_checked(keys)
        self.sweeps(keys, cross_checked)
        disturbed = disturbances(members, self.measured, self.timings.sweeps)
        unstable: dict[Key, str] = {}
        if disturbed:
            again = retimed_with(list(disturbed), members, self.measured)
            self.measured.again(again)
            self.total += len(again) * self.timings.sweeps
            self.sweeps({name: [k for k in team if k in again] for name, team in keys.items()}, cross_checked,
                        second=True)
            given_up = self.give_up(again, disturbed)
            unstable = {c: why for c, why in disturbances(members, self.measured, self.timings.sweeps).items()
                        if c in again and c not in given_up}
            unstable.update({c: why for c, why in given_up.items() if why})
        self.decide(group, [f"{key.label()}: {why}" for key, why in disturbed.items()], unstable)
        for process in (p for team in self.teams.values() for p in team):
            self.ask(process, Release())

    def give_up(self, again: list[BenchConfig], disturbed: dict[BenchConfig, str]) -> dict[BenchConfig, str]:
        """Where a second pass failed for a configuration of a direction, that direction's second pass is
        incomplete (its ratios would miss a peer): every configuration of it keeps its first pass, the disturbed
        ones marked unstable with the failure (the others with ""). Returns them."""
        failures = {c.direction: ": ".join(self.measured.problems[c]) for c in again if c in self.measured.problems}
        given_up = {c: f"timing it again failed ({failures[c.direction]})" if c in disturbed else ""
                    for c in again if c.direction in failures}
        for config, why in given_up.items():
            self.measured.restore(config, why)
            if self.journal is not None:
                self.journal({"event": "restored", **journal_what(config), "reason": why})
        return given_up

    def decide(self, group: Group, retimed: list[str], unstable: dict[Key, str]) -> None:
        self.measured.decide(group, retimed, unstable)
        if self.journal is not None:
            self.journal({"event": "checked", "group": list(group), "retimed": retimed,
                          "unstable": [{**journal_what(key), "reason": why} for key, why in unstable.items()]})

    def sweeps(self, keys: dict[str, list[Key]], cross_checked: set[BenchConfig], second: bool = False) -> None:
        for sweep in range(self.timings.sweeps):
            self.sweep(keys, cross_checked, sweep, second)

    def sweep(self, keys: dict[str, list[Key]], cross_checked: set[BenchConfig], sweep: int, second: bool) -> None:
        """One block of every configuration, frameworks in turn; sweep s is timed in process s mod processes. A
        cross-checked configuration is then timed by its framework's own timer, in the same process (in every
        other round of the processes: `cross_checks`). `second`:
        the pass that times the disturbed configurations again."""
        for name, key in _interleaved(keys, sweep):
            if key not in self.measured.problems:
                process = self.teams[name][sweep % self.timings.processes]
                self.note(key, self.ask(process, TimeBlock(key)), "block", sweep=sweep, process=process.index,
                          **({"pass": 2} if second else {}))
                if (isinstance(key, BenchConfig) and key in cross_checked and key not in self.measured.problems
                        and self.cross_checks(sweep)):
                    self.cross_check(process, key, sweep, second)
            again = " (again)" if second else ""
            self.advance(f"sweep {sweep + 1}/{self.timings.sweeps}{again} "
                         f"{key.label() if isinstance(key, BenchConfig | KernelConfig) else name}")

    def cross_checks(self, sweep: int) -> bool:
        """Whether sweep s also runs the frameworks' own timers: every other round of the processes (sweeps 0–2,
        6–8, … with three), so that each process is checked and the check costs half as much."""
        return (sweep // self.timings.processes) % 2 == 0

    def cross_check(self, process: _Process, key: BenchConfig, sweep: int, second: bool) -> None:
        """The framework's own timer on `key`; its failure is noted beside the configuration, never instead of it."""
        match self.ask(process, CrossCheck(key)):
            case OwnTimed() as reply:
                self.measured.own[key].append(reply)
                record: dict[str, Any] = {"timer": reply.timer, "median_s": reply.median_s}
            case Failed(error_type=error_type, message=message):
                self.measured.own_problems[key] = f"{error_type}: {message}"
                record = {"own_error": self.measured.own_problems[key]}
            case other:
                self.measured.own_problems[key] = f"the worker answered {type(other).__name__}"
                record = {"own_error": self.measured.own_problems[key]}
        if self.journal is not None:
            self.journal({"event": "crosscheck", **journal_what(key), "sweep": sweep, **record,
                          **({"pass": 2} if second else {})})

    def worker_info(self, frameworks: Sequence[str]) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for name in frameworks:
            team = self.teams.get(name)
            if team is None:
                info[name] = {"replayed": True}
                continue
            hello = team[0].hello
            first = {} if hello is None else {"versions": hello.versions, "devices": hello.devices,
                                              "cpus": hello.cpus, "threads": hello.threads, "pid": hello.pid}
            info[name] = {**first, "pids": [p.hello.pid if p.hello else None for p in team],
                          "problem": "; ".join(p.failed for p in team if p.failed)}
        return info


def run_bench(
    configs: Sequence[BenchConfig],
    adapters: dict[str, type[Adapter]],
    *,
    sweeps: int = 5,
    processes: int = DEFAULT_PROCESSES,
    threads: int = 1,
    cpus: list[int] | None = None,
    seed: int = 0,
    options: BlockOptions | None = None,
    log_dir: Path | None = None,
    timeout: float = 900.0,
    progress: Progress | None = None,
    journal: Journal | None = None,
    replay: Sequence[dict[str, Any]] = (),
    pool: WorkerPool | None = None,
) -> BenchResult:
    """Time every configuration; return the rows (without ratios' peers missing), pytest-benchmark entries with
    every round, what each framework's workers reported, and the bandwidth baselines.

    `processes`: worker processes per framework; sweep s is timed in process s mod `processes`.

    `replay`: the journal of an interrupted run of the same configurations. Its (device, dtype, size) groups
    that finished every sweep are kept as they are; the others are timed again from the start, since ratios
    are only taken side by side within one pass over a group.

    `pool`: the worker pool (a test's in-process stand-in; default, worker processes).
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1; got {processes}")
    timings = Timings(sweeps, processes, options or BlockOptions())
    measured = Measurements.replayed(replay, sweeps)
    groups = {group: members for group, members in groups_of(configs).items()
              if not measured.finished(group, members, sweeps)}
    for group, members in groups.items():
        measured.forget(group_keys(group, members))
    frameworks = list(dict.fromkeys(c.framework for c in configs))
    with_kernel = any(kernel_keys(group, members) for group, members in groups_of(configs).items())
    teams = [*frameworks, KERNEL] if any(kernel_keys(g, m) for g, m in groups.items()) else frameworks
    built = _kernel_build() if with_kernel else {}  # cached after a first build: a resumed run describes it too
    pool = pool if pool is not None else WorkerPool()
    bench = _Bench(pool, timings, timeout, measured, journal, progress,
                   total=sum(len(group_keys(g, m)) for g, m in groups.items()) * (sweeps + 1))
    try:
        if groups:
            bench.start(teams, cpus if cpus is not None else list(range(threads)), threads, seed, log_dir)
        for group, members in groups.items():
            bench.time_group(group, members)
    finally:
        pool.close(goodbye=Stop())
    workers = bench.worker_info([*frameworks, KERNEL] if with_kernel else frameworks)
    rows, entries = bench_rows(configs, measured, workers, timings)
    checks = [{"device": g[0], "dtype": g[1], "n": g[2], "retimed": why} for g, why in measured.decided.items()]
    return BenchResult(rows, entries, {name: workers[name] for name in frameworks}, measured.baselines(),
                       {"build": built, "workers": workers.get(KERNEL, {}), "times": measured.kernels()}, checks)


def _kernel_build() -> dict[str, Any]:
    """Build the speed-of-light kernel here, once, before its workers load it: how it was built, or why not."""
    try:
        return build_kernel().record()
    except (KernelUnavailable, OSError) as exc:
        return {"unavailable": f"{type(exc).__name__}: {exc}"}


def _load_average() -> float | None:
    """The machine's 1-minute load average: other work on the machine while timing shows up here."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def run_into(store: RunStore, configs: list[BenchConfig], adapters: dict[str, type[Adapter]], *,
             progress: Progress | None = None, replay: Sequence[dict[str, Any]] = ()) -> pd.DataFrame:
    """Time (the rest of) the configurations into the run folder: blocks to the bench journal as they come, then
    bench.parquet (with the audit's statuses, when the folder has an audit), bench.json and meta.json."""
    started, load_before = time.time(), _load_average()
    meta = store.read_meta()
    settings = meta["bench"]
    options = BlockOptions(**settings["block_options"])
    (store.path / "logs").mkdir(exist_ok=True)
    threads = settings["threads"]
    result = run_bench(configs, adapters, sweeps=settings["sweeps"], processes=settings.get("processes", 1),
                       threads=threads["requested"], cpus=threads["cpus"] or None, seed=settings["seed"],
                       options=options, log_dir=store.path / "logs", progress=progress, replay=replay,
                       journal=lambda record: store.append([record], BENCH_JOURNAL))
    store.sync(BENCH_JOURNAL)
    frame = as_frame(result.rows, meta["run_id"])  # an audit's folder keeps its run id
    if store.has_conformance():
        statuses = conformance_status(store.conformance())
        frame = frame.drop(columns=["status", "status_detail"]).merge(
            statuses, on=["impl", "dtype", "device", "mode"], how="left")[BENCH_COLUMNS]
        frame[["status", "status_detail"]] = frame[["status", "status_detail"]].fillna("")
    store.write_bench(frame, benchmark_document(result.entries))
    settings.update(complete=True, wall_seconds=round(time.time() - started, 3), baselines=result.baselines,
                    workers=result.workers, load_average={"start": load_before, "end": _load_average()},
                    kernel=result.kernel, checks=result.checks)
    settings["threads"]["frameworks"] = {name: {"cpus": info.get("cpus"), **info.get("threads", {})}
                                         for name, info in result.workers.items() if "cpus" in info}
    store.update_meta(bench=settings)
    frame.attrs["run_dir"] = str(store.path)
    return frame
