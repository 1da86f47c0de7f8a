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

import contextlib
import hashlib
import multiprocessing as mp
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import bytes_read
from harness.bench_worker import bench_worker_main
from harness.matrix import BenchConfig
from harness.timing import BlockOptions, benchmark_entry, summarize
from harness.tolerance import SEVERITY, STATUSES, worst_status
from harness.worker import death
from implementations import Adapter

__all__ = ["BENCH_COLUMNS", "DEFAULT_PROCESSES", "BenchResult", "as_frame", "bench_row_id", "conformance_status",
           "run_bench"]

BENCH_COLUMNS = [
    "run_id", "row_id", "framework", "framework_version", "impl", "input_form", "device", "dtype", "n", "direction",
    "mode", "rounds", "iterations", "sweeps", "processes", "median_s", "iqr_s", "min_s", "mean_s", "compile_s",
    "bytes", "gbps", "baseline_gbps", "roofline_fraction", "ratio_to_best", "ratio_low", "ratio_high",
    "peak_memory_bytes", "peak_memory_note", "status", "status_detail", "error_type", "error_message",
]
# Statuses that say something about an implementation's accuracy at a dtype (rejecting invalid input is right,
# and unsupported/unavailable say nothing): the bench row shows the worst of these.
_ACCURACY = [s for s in STATUSES if s not in ("rejected", "unsupported", "unavailable")]

Progress = Callable[[int, int, str], None]
DEFAULT_PROCESSES = 3  # worker processes per framework: a process's own speed is sampled, not taken as the run's


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    entries: list[dict[str, Any]]  # pytest-benchmark JSON benchmarks, every round
    workers: dict[str, Any]
    baselines: list[dict[str, Any]]


@dataclass
class _Worker:
    process: Any
    channel: Connection
    name: str  # "torch", or "torch (process 2 of 3)"
    index: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    failed: str = ""  # why the worker can no longer answer

    def ask(self, request: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        """Send one request and wait for its reply; a dead or silent worker gives ("raised", …) and is stopped."""
        if self.failed:
            return ("raised", "WorkerLost", self.failed)
        with contextlib.suppress(OSError):  # the pipe is gone with the worker: receive says how it ended
            self.channel.send(request)
        return self.receive(timeout)

    def receive(self, timeout: float) -> tuple[Any, ...]:
        """The worker's next message; if it is dead or silent past `timeout`, why (and the worker is stopped)."""
        try:
            if self.channel.poll(timeout):
                reply: tuple[Any, ...] = self.channel.recv()
                return reply
            self.failed = f"the {self.name} worker gave no answer within {timeout:g} s (stopped)"
        except (EOFError, OSError):
            self.process.join(timeout=5)
            self.failed = f"the {self.name} {death(self.process)}"
        self.stop()
        return ("raised", "WorkerLost", self.failed)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the worker is gone already
            self.channel.send(("stop",))
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)


def _start(framework: str, index: int, count: int, cpus: list[int], threads: int, seed: int,
           options: BlockOptions, log_dir: Path | None) -> _Worker:
    ctx = mp.get_context("spawn")
    mine, theirs = ctx.Pipe(duplex=True)
    log_path = None if log_dir is None else str(log_dir / f"bench-{framework}-{index}.log")
    process = ctx.Process(target=bench_worker_main, name=f"bce-bench-{framework}-{index}", daemon=True,
                          args=(framework, cpus, threads, seed, options, theirs, log_path))
    process.start()
    theirs.close()
    name = framework if count == 1 else f"{framework} (process {index + 1} of {count})"
    return _Worker(process, mine, name, index)


def _hello(worker: _Worker, timeout: float) -> None:
    """Wait for the worker's first message: what it loaded, or why it could not."""
    reply = worker.receive(timeout)
    if reply[0] == "ok":
        worker.info = reply[1]
    else:
        worker.failed = f"{worker.name} failed to load: {reply[1]}: {reply[2]}"
        worker.stop()


def _interleaved(keys_by_framework: dict[str, list[Any]], sweep: int) -> list[tuple[str, Any]]:
    """A B C D A B C D …: one configuration of each framework in turn; the first framework rotates per sweep."""
    names = list(keys_by_framework)
    shift = sweep % len(names) if names else 0
    names = names[shift:] + names[:shift]
    order: list[tuple[str, Any]] = []
    for group in zip_longest(*(keys_by_framework[name] for name in names)):
        order.extend((name, key) for name, key in zip(names, group, strict=True) if key is not None)
    return order


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
    journal: Callable[[dict[str, Any]], None] | None = None,
    replay: Sequence[dict[str, Any]] = (),
) -> BenchResult:
    """Time every configuration; return the rows (without ratios' peers missing), pytest-benchmark entries with
    every round, what each framework's workers reported, and the bandwidth baselines.

    `processes`: worker processes per framework; sweep s is timed in process s mod `processes`.

    `replay`: the journal of an interrupted run of the same configurations. Its (device, dtype, size) groups
    that finished every sweep are kept as they are; the others are timed again from the start, since ratios
    are only taken side by side within one pass over a group.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1; got {processes}")
    options = options or BlockOptions()
    cpus = cpus if cpus is not None else list(range(threads))
    frameworks = list(dict.fromkeys(c.framework for c in configs))
    prepared, problems, blocks = _replayed(replay, sweeps)
    groups: dict[tuple[str, str, int], list[BenchConfig]] = defaultdict(list)
    for config in configs:
        groups[(config.device, config.dtype, config.n)].append(config)
    finished = {group for group, members in groups.items()
                if all(key in problems or (key in prepared and len(blocks.get(key, [])) == sweeps)
                       for key in _group_keys(group, members))}
    groups = {group: members for group, members in groups.items() if group not in finished}
    for group, members in groups.items():  # a group timed again starts clean
        for key in _group_keys(group, members):
            prepared.pop(key, None)
            problems.pop(key, None)
            blocks.pop(key, None)
    teams = {name: [_start(name, index, processes, cpus, threads, seed, options, log_dir)
                    for index in range(processes)] for name in frameworks} if groups else {}
    everyone = [worker for team in teams.values() for worker in team]
    for worker in everyone:  # they import their frameworks at the same time
        _hello(worker, timeout)
    total = sum(len(_group_keys(group, members)) for group, members in groups.items()) * (sweeps + 1)
    done = 0

    def advance(what: str, skipped: bool = False) -> None:
        """One step done; `skipped`: a preparation failed, so its sweeps are no longer to be done either."""
        nonlocal done, total
        done += 1
        total -= sweeps if skipped else 0
        if progress is not None:
            progress(done, total, what)

    def prepare(team: list[_Worker], request: tuple[Any, ...]) -> tuple[Any, ...]:
        """Prepare in every process of a framework: the first calibrates, the others take its rounds and
        iterations. The first failure is the answer, and a framework that lost a process has nothing more to
        prepare. `compile_s` is the first process's first call: the later processes would find PyTorch
        Inductor's on-disk cache filled by it."""
        lost = [worker.failed for worker in team if worker.failed]
        if lost:
            return ("raised", "WorkerLost", lost[0])
        first = team[0].ask(request, timeout)
        if first[0] != "ok":
            return first
        fixed = (first[1]["rounds_per_block"], first[1]["iterations"])
        for worker in team[1:]:
            reply = worker.ask((*request, fixed), timeout)
            if reply[0] != "ok":
                return reply
        return first

    def record(key: Any, reply: tuple[Any, ...], event: str, **extra: Any) -> bool:
        """Note a reply (and journal it, so an interrupted run keeps its rounds); True when it is a result."""
        if reply[0] != "ok":
            problems[key] = ("Unsupported", reply[1]) if reply[0] == "unsupported" else (reply[1], reply[2])
        if journal is not None:
            what = key._asdict() if isinstance(key, BenchConfig) else {"read": list(key[1:])}
            outcome = reply[1] if reply[0] == "ok" else {"error": list(problems[key])}
            journal({"event": event, **what, **extra, **outcome})
        return reply[0] == "ok"

    try:
        for (device, dtype, n), members in groups.items():
            nbytes = bytes_read(n, dtype)
            keys: dict[str, list[Any]] = {name: [] for name in frameworks}
            for name in dict.fromkeys(config.framework for config in members):
                read_key = ("read", name, device, dtype, n)
                reply = prepare(teams[name], ("read", read_key, nbytes, device))
                ready = record(read_key, reply, "prepared")
                if ready:
                    prepared[read_key] = reply[1]
                    keys[name].append(read_key)
                advance(f"prepare {name} read {device} n={n:g}", skipped=not ready)
            for config in members:
                reply = prepare(teams[config.framework], ("prepare", config))
                ready = record(config, reply, "prepared")
                if ready:
                    prepared[config] = reply[1]
                    keys[config.framework].append(config)
                advance(f"prepare {config.label()}", skipped=not ready)
            for sweep in range(sweeps):
                for name, key in _interleaved(keys, sweep):
                    if key not in problems:
                        worker = teams[name][sweep % processes]
                        reply = worker.ask(("block", key), timeout)
                        if record(key, reply, "block", sweep=sweep, process=worker.index):
                            blocks[key].append((reply[1]["iterations"], list(reply[1]["data"])))
                    advance(f"sweep {sweep + 1}/{sweeps} {key.label() if isinstance(key, BenchConfig) else name}")
            for worker in everyone:
                worker.ask(("release",), timeout)
    finally:
        for worker in everyone:
            worker.stop()

    worker_info = {name: {**team[0].info, "pids": [worker.info.get("pid") for worker in team],
                          "problem": "; ".join(worker.failed for worker in team if worker.failed)}
                   for name, team in teams.items()}
    worker_info.update({name: {"replayed": True} for name in frameworks if name not in worker_info})
    baselines = _baselines(prepared, blocks, problems)
    rows, entries = _rows(configs, prepared, problems, blocks, baselines, worker_info, options, sweeps, processes)
    return BenchResult(rows, entries, worker_info, baselines)


def _replayed(records: Sequence[dict[str, Any]], sweeps: int) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
    """prepared, problems and blocks (by key, in sweep order) as an earlier run journaled them; a later record of
    the same key wins (a group timed again replaces what it had)."""
    prepared: dict[Any, dict[str, Any]] = {}
    problems: dict[Any, tuple[str, str]] = {}
    by_sweep: dict[Any, dict[int, tuple[int, list[float]]]] = defaultdict(dict)
    for record in records:
        if "read" in record:
            key: Any = ("read", *record["read"])
        else:
            key = BenchConfig(**{name: record[name] for name in BenchConfig._fields})
        if "error" in record:
            problems[key] = (str(record["error"][0]), str(record["error"][1]))
        elif record.get("event") == "prepared":
            prepared[key] = {name: record[name] for name in ("compile_s", "peak_memory_bytes", "peak_memory_note",
                                                             "rounds_per_block", "iterations") if name in record}
            problems.pop(key, None)
            by_sweep[key] = {}
        elif record.get("event") == "block":
            by_sweep[key][int(record["sweep"])] = (int(record["iterations"]), list(record["data"]))
    blocks: dict[Any, list[tuple[int, list[float]]]] = defaultdict(list)
    for key, found in by_sweep.items():
        blocks[key] = [found[s] for s in range(sweeps) if s in found]
    return prepared, problems, blocks


def _block_median(block: tuple[int, list[float]]) -> float:
    return float(statistics.median(block[1]))


def _group_keys(group: tuple[str, str, int], members: Sequence[BenchConfig]) -> list[Any]:
    """What a (device, dtype, size) group times: its configurations, and the read of the bytes by each framework
    that has one of them (a framework without the group's device has nothing to read there either)."""
    return [*members, *(("read", name, *group) for name in dict.fromkeys(c.framework for c in members))]


def _baselines(prepared: dict[Any, Any], blocks: dict[Any, Any], problems: dict[Any, Any]) -> list[dict[str, Any]]:
    """Per (device, dtype, n): each framework's read of the bytes, and the best (the baseline)."""
    found = []
    for key in prepared:
        if isinstance(key, tuple) and key[0] == "read" and key not in problems and blocks.get(key):
            _, framework, device, dtype, n = key
            data = [t for block in blocks[key] for t in block[1]]
            found.append({"framework": framework, "device": device, "dtype": dtype, "n": n,
                          "median_s": float(statistics.median(data)), "rounds": len(data)})
    return found


def _rows(configs: Sequence[BenchConfig], prepared: dict[Any, Any], problems: dict[Any, Any],
          blocks: dict[Any, Any], baselines: list[dict[str, Any]], workers: dict[str, Any],
          options: BlockOptions, sweeps: int, processes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # ratio to the fastest, sweep by sweep, within each (device, dtype, n, direction)
    per_sweep: dict[Any, list[float]] = defaultdict(list)
    peers: dict[tuple[str, str, int, str], list[BenchConfig]] = defaultdict(list)
    for config in configs:
        if config not in problems and len(blocks.get(config, [])) == sweeps:
            peers[(config.device, config.dtype, config.n, config.direction)].append(config)
    for members in peers.values():
        for sweep in range(sweeps):
            medians = {c: _block_median(blocks[c][sweep]) for c in members}
            best = min(medians.values())
            for config, value in medians.items():
                per_sweep[config].append(value / best)

    rows, entries = [], []
    for config in configs:
        nbytes = bytes_read(config.n, config.dtype)
        version = (workers.get(config.framework, {}).get("versions") or {}).get(config.framework, "")
        row: dict[str, Any] = {**config._asdict(), "framework_version": version, "bytes": nbytes,
                               "sweeps": sweeps, "processes": processes}
        if config in problems:
            row["error_type"], row["error_message"] = problems[config]
            rows.append(row)
            continue
        iterations = blocks[config][0][0] if blocks.get(config) else prepared[config]["iterations"]
        data = [t for block in blocks.get(config, []) for t in block[1]]
        stats = summarize(data) if data else {}
        reads = [b["median_s"] for b in baselines
                 if (b["device"], b["dtype"], b["n"]) == (config.device, config.dtype, config.n)]
        baseline_gbps = nbytes / min(reads) / 1e9 if reads else float("nan")
        median = stats.get("median", float("nan"))
        gbps = nbytes / median / 1e9
        ratios = per_sweep.get(config, [])
        row.update(
            rounds=len(data), iterations=iterations, median_s=median, iqr_s=stats.get("iqr", float("nan")),
            min_s=stats.get("min", float("nan")), mean_s=stats.get("mean", float("nan")),
            compile_s=prepared[config]["compile_s"], gbps=gbps, baseline_gbps=baseline_gbps,
            roofline_fraction=gbps / baseline_gbps,
            ratio_to_best=float(statistics.median(ratios)) if ratios else float("nan"),
            ratio_low=min(ratios) if ratios else float("nan"), ratio_high=max(ratios) if ratios else float("nan"),
            peak_memory_bytes=prepared[config]["peak_memory_bytes"],
            peak_memory_note=prepared[config]["peak_memory_note"],
        )
        rows.append(row)
        if data:
            params = {"impl": config.impl, "mode": config.mode, "direction": config.direction,
                      "device": config.device, "dtype": config.dtype, "n": config.n}
            extra = {"compile_s": row["compile_s"], "bytes": nbytes, "gbps": row["gbps"],
                     "ratio_to_best": row["ratio_to_best"], "peak_memory_bytes": row["peak_memory_bytes"],
                     "sweeps": sweeps, "processes": processes}
            group = f"{config.device} {config.dtype} n={config.n:g} {config.direction}"
            entries.append(benchmark_entry("bce", group, params, extra, options, iterations, data))
    for key, value in prepared.items():
        if isinstance(key, tuple) and key[0] == "read" and key not in problems and blocks.get(key):
            _, framework, device, dtype, n = key
            data = [t for block in blocks[key] for t in block[1]]
            params = {"framework": framework, "device": device, "dtype": dtype, "n": n}
            entries.append(benchmark_entry("read", f"{device} {dtype} n={n:g} read", params,
                                           {"bytes_read": "x and y"}, options, value["iterations"], data))
    return rows, entries


def conformance_status(conformance: pd.DataFrame) -> pd.DataFrame:
    """Per (impl, dtype, device, mode): the worst accuracy status of the audit's reference rows, and the counts."""
    keys = ["impl", "dtype", "device", "mode"]
    judged = conformance[(conformance["check"] == "reference") & conformance["status"].isin(_ACCURACY)]
    if judged.empty:
        return pd.DataFrame(columns=[*keys, "status", "status_detail"])
    def summary(statuses: pd.Series) -> pd.Series:
        counts = statuses.value_counts()
        ordered = [status for status in reversed(SEVERITY) if status in counts.index]  # mildest first
        detail = ", ".join(f"{status} {counts[status]}" for status in ordered)
        return pd.Series({"status": worst_status(counts.index), "status_detail": detail})

    table = judged.groupby(keys)["status"].apply(summary).unstack()
    return table.reset_index()


def bench_row_id(impl: str, mode: str, direction: str, device: str, dtype: str, n: str) -> str:
    """Stable hash of a bench row's key: the same configuration has the same id in every run."""
    key = "|".join(("bench", impl, mode, direction, device, dtype, n))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


_TEXT_COLUMNS = ("error_type", "error_message", "status", "status_detail", "peak_memory_note")


def as_frame(rows: list[dict[str, Any]], run_id: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in BENCH_COLUMNS:
        if column not in frame.columns:
            frame[column] = "" if column in _TEXT_COLUMNS else np.nan
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    frame["run_id"] = run_id
    frame["row_id"] = [bench_row_id(*(str(v) for v in key)) for key in
                       zip(frame["impl"], frame["mode"], frame["direction"], frame["device"], frame["dtype"],
                           frame["n"], strict=True)]
    return frame[BENCH_COLUMNS]
