"""The Python API that the CLI and notebooks share: `audit(...)` returns the conformance DataFrame and writes
the run folder."""

from __future__ import annotations

import functools
import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cases import DTYPES, Case, builtin_cases, family_names, load_case_file
from harness.bench import BENCH_COLUMNS, DEFAULT_PROCESSES, as_frame, conformance_status, run_bench
from harness.conventions import Convention, convention_use, load_conventions
from harness.environment import collect_environment
from harness.matrix import BenchConfig, Scope, Shard, bench_configs, shard_bench, shard_cases
from harness.oracle import ORACLE_VERSION
from harness.runner import CONFORMANCE_COLUMNS, CellKey, Progress, discover, run_conformance
from harness.store import BENCH_JOURNAL, RunStore
from harness.timing import BlockOptions, benchmark_document
from harness.tolerance import POLICY
from implementations import DIRECTIONS, REDUCTIONS, Adapter, adapter_classes

__all__ = [
    "BENCH_SIZES",
    "DEFAULT_PROCESSES",
    "DEFAULT_SWEEPS",
    "DEFAULT_TIMEOUT",
    "DEVICES",
    "GPU_SWEEP_DTYPES",
    "GPU_SWEEP_SIZES",
    "UsageError",
    "audit",
    "bench",
    "gpu_sweep",
    "new_run_id",
    "resolve_frameworks",
    "resume_audit",
    "resume_bench",
]

DEVICES = ("cpu", "gpu")


class UsageError(ValueError):
    """Bad usage or bad input: the message names the problem and the fix (the CLI exits with code 2)."""


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _choose(noun: str, given: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """Validate a list of names of one kind (`noun`, singular) against the known ones; None means all."""
    if given is None:
        return list(known)
    chosen = [item.strip() for item in given if item.strip()]
    if not chosen:
        raise UsageError(f"no {noun} given; choose from: {', '.join(known)}")
    for item in chosen:
        if item not in known:
            raise UsageError(f"unknown {noun} {item!r}; available: {', '.join(known)}")
    return list(dict.fromkeys(chosen))


def resolve_frameworks(frameworks: Sequence[str] | None) -> dict[str, type[Adapter]]:
    """Adapters to run: all known ones by default (missing ones become `unavailable` rows); a framework named
    explicitly must be installed."""
    classes = adapter_classes()
    chosen = _choose("framework", frameworks, list(classes))
    if frameworks is not None:
        missing = [name for name in chosen if not classes[name].is_available()]
        if missing:
            raise UsageError(f"framework {missing[0]!r} is not installed; install it (pip install "
                             f"'bce-harness[{missing[0]}]') or leave it out of --frameworks")
    return {name: classes[name] for name in chosen}


def _cases(cases: str | Path | Sequence[Case] | None, families: Sequence[str] | None, seed: int) -> list[Case]:
    if cases is not None and families is not None:
        raise UsageError("--cases replaces the built-in families; give either --cases or --families")
    if isinstance(cases, str | Path):
        try:
            return load_case_file(cases)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if cases is not None:
        return list(cases)
    return builtin_cases(seed, _choose("family", families, family_names()))


DEFAULT_TIMEOUT = 600.0  # seconds without a result from a worker: its cell is a `timeout`
DEFAULT_JOBS = 2  # framework workers at once


def _jobs(jobs: int) -> int:
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: give 1 or more framework workers")
    return jobs


def _memory_limit(gib: float | None, jobs: int) -> float | None:
    """GiB a worker may hold resident: given, or the machine's memory shared by the workers (and this process)."""
    if gib is not None:
        if gib <= 0:
            raise UsageError(f"--memory-limit {gib}: give a positive number of GiB")
        return gib
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return round(total / 2**30 / (max(1, jobs) + 1), 1)


def _shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _case_digest(cases: Sequence[Case]) -> str:
    return hashlib.sha256("".join(case.digest() for case in cases).encode()).hexdigest()


def audit(
    frameworks: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    cases: str | Path | Sequence[Case] | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    full: bool = False,
    jobs: int | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    write_report: bool = True,
    shard: str | None = None,
    timeout: float | None = None,
    memory_limit: float | None = None,
) -> pd.DataFrame:
    """Run the conformance audit and return one row per implementation × case × dtype × device × reduction ×
    quantity.

    Args:
        frameworks: import names (default: every known adapter; missing ones give `unavailable` rows).
        dtypes: NumPy names (default: float64, float32, float16, bfloat16).
        devices: "cpu" and/or "gpu" (default: cpu). Asking for gpu where no framework has one is a UsageError.
        families: built-in case families (default: all).
        cases: a JSON case file or a list of `Case`, replacing the built-in families.
        out: the run folder to create (default: runs/<run_id>/).
        seed: seed for the random families.
        full: run every compiled path on every case and the longest reductions (cases tagged "full").
        jobs: framework workers running at once (default 2).
        use_cache: read and write the reference cache.
        progress: callback (done, total, what).
        write_report: also write report.md and report.html into the run folder.
        shard: "i/n": run part i of n of the cases (`merge` puts the parts together).
        timeout: seconds a worker may stay silent on one cell before it is stopped (`timeout` rows; default 600).
        memory_limit: GiB of resident memory a worker may use before it is stopped (`crashed` rows); default:
            the machine's memory shared between the workers.
    """
    adapters = resolve_frameworks(frameworks)
    part = _shard(shard)
    jobs = _jobs(DEFAULT_JOBS if jobs is None else jobs)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    memory_limit = _memory_limit(memory_limit, jobs)
    chosen_dtypes = _choose("dtype", dtypes, list(DTYPES))
    chosen_devices = _choose("device", devices, DEVICES) if devices is not None else ["cpu"]
    all_cases = _cases(cases, families, seed)
    chosen_cases = shard_cases(all_cases, part)
    if not chosen_cases:
        raise UsageError(f"--shard {part}: there are only {len(all_cases)} cases; use fewer shards")
    _check_gpu(adapters, chosen_devices)
    conventions = load_conventions()
    run_id = new_run_id()
    folder = Path(out) if out is not None else Path("runs") / run_id
    meta: dict[str, Any] = {
        "run_id": run_id,
        "kind": "audit",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "frameworks": list(adapters),
        "dtypes": chosen_dtypes,
        "devices": chosen_devices,
        "reductions": list(REDUCTIONS),
        "case_source": str(cases) if isinstance(cases, str | Path) else ("custom" if cases else "builtin"),
        "families": sorted({c.family for c in chosen_cases}),
        "case_count": len(chosen_cases),
        "case_digest": _case_digest(chosen_cases),
        "shard": str(part) if part else None,
        "unsharded_case_digest": _case_digest(all_cases),
        "oracle_version": ORACLE_VERSION,
        "tolerance_policy": POLICY,
        "full": full,
        "conventions": [{"id": c.id, "impls": list(c.impls), "quantity": c.quantity, "kind": c.kind,
                         "reason": c.reason, "link": c.link, **c.parameters} for c in conventions],
        "worker_threads": 1,
        "jobs": jobs,
        "timeout_s": timeout,
        "memory_limit_gib": memory_limit,
        **collect_environment(),
    }
    store = RunStore.create(folder, meta)
    store.write_cases(chosen_cases, seed)
    (folder / "logs").mkdir()
    return _run_audit(store, meta, chosen_cases, adapters, conventions, jobs=jobs, use_cache=use_cache,
                      progress=progress, write_report=write_report, timeout=timeout, memory_limit=memory_limit)


def resume_limits(meta: dict[str, Any], jobs: int | None = None, timeout: float | None = None,
                  memory_limit: float | None = None) -> tuple[int, float, float | None]:
    """Workers, per-cell time limit and memory limit for a resumed audit: the run's own, unless given anew."""
    jobs = _jobs(jobs if jobs is not None else int(meta.get("jobs") or DEFAULT_JOBS))
    timeout = timeout if timeout is not None else float(meta.get("timeout_s") or DEFAULT_TIMEOUT)
    if memory_limit is None and meta.get("memory_limit_gib") is not None:
        memory_limit = float(meta["memory_limit_gib"])
    return jobs, timeout, _memory_limit(memory_limit, jobs)


def resume_audit(run_dir: str | Path, jobs: int | None = None, use_cache: bool = True,
                 progress: Progress | None = None, write_report: bool = True, timeout: float | None = None,
                 memory_limit: float | None = None) -> pd.DataFrame:
    """Finish an interrupted audit in its own folder: the cells its journal already holds are not run again,
    and the table ends with each row once, as an uninterrupted run would have it. Workers, time and memory
    limits are the run's own unless given here (what was used goes into meta.json)."""
    store = RunStore(run_dir)
    meta = store.read_meta()
    if meta.get("kind") != "audit":
        raise UsageError(f"{str(run_dir)!r} holds no audit (kind {meta.get('kind')!r}); --resume continues an "
                         "audit in its own folder")
    if meta.get("complete"):
        raise UsageError(f"{str(run_dir)!r} is complete already; there is nothing to resume")
    cases = list(store.read_cases().values())
    adapters = resolve_frameworks(meta.get("frameworks"))
    rows = store.journal_rows()
    recorded: frozenset[CellKey] = frozenset(
        (r["impl"], r["case"], r["dtype"], r["device"], r["reduction"], r["mode"], r["check"]) for r in rows)
    jobs, timeout, memory_limit = resume_limits(meta, jobs, timeout, memory_limit)
    resumed = [*meta.get("resumed", []), {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                                           "rows_kept": len(rows)}]
    changes = {"resumed": resumed, "jobs": jobs, "timeout_s": timeout, "memory_limit_gib": memory_limit}
    store.update_meta(**changes)
    meta.update(changes)
    (store.path / "logs").mkdir(exist_ok=True)
    return _run_audit(store, meta, cases, adapters, load_conventions(), jobs=jobs, use_cache=use_cache,
                      progress=progress, write_report=write_report, timeout=timeout, memory_limit=memory_limit,
                      recorded=recorded)


def _run_audit(store: RunStore, meta: dict[str, Any], cases: list[Case], adapters: dict[str, type[Adapter]],
               conventions: list[Convention], *, jobs: int, use_cache: bool, progress: Progress | None,
               write_report: bool, timeout: float, memory_limit: float | None,
               recorded: frozenset[CellKey] = frozenset()) -> pd.DataFrame:
    """Run (the rest of) the matrix into the store, consolidate, and mark the run complete."""
    run_id, started = meta["run_id"], time.time()

    def emit(rows: list[dict[str, Any]]) -> None:
        store.append([dict(row, run_id=run_id) for row in rows])

    limit = None if memory_limit is None else int(memory_limit * 2**30)
    workers = run_conformance(cases, adapters, meta["dtypes"], meta["devices"],
                              scope=Scope.everything() if meta.get("full") else Scope.default(),
                              conventions=conventions, jobs=jobs, use_cache=use_cache, silence_timeout=timeout,
                              memory_limit=limit, recorded=recorded,
                              log_dir=store.path / "logs", emit=emit, progress=progress)
    frame = store.consolidate(CONFORMANCE_COLUMNS)
    matched, stale = convention_use(conventions, frame)
    store.update_meta(complete=True, wall_seconds=round(time.time() - started, 3), workers=workers["workers"],
                      rows=len(frame), stale_conventions=stale, matched_conventions=matched,
                      faults=workers["faults"], reference_seconds=workers["reference_seconds"])
    if write_report:
        from reports import write_reports

        write_reports(store.path)
    frame.attrs["run_dir"] = str(store.path)
    return frame


BENCH_SIZES = (1_000, 100_000, 10_000_000)
DEFAULT_SWEEPS = 10  # median of 10 side-by-side ratios: two runs on a noisy 2-core machine agree within ±15 %


@functools.cache
def _devices_found(adapters: tuple[tuple[str, type[Adapter]], ...]) -> dict[str, Any]:
    """`discover` (a worker per framework, each importing it and its GPU runtime), once per process: gpu-sweep
    checks the GPU for itself, its audit and its bench."""
    return discover(dict(adapters))


def _check_gpu(adapters: dict[str, type[Adapter]], devices: Sequence[str]) -> dict[str, list[str]]:
    """Each framework's devices when a GPU is asked for (else {}); `--devices gpu` where no installed framework
    sees a GPU is bad usage."""
    if "gpu" not in devices:
        return {}
    found = _devices_found(tuple((n, a) for n, a in adapters.items() if a.is_available()))
    if not any(isinstance(v, tuple) and "gpu" in v[1] for v in found.values()):
        raise UsageError(f"no installed framework sees a GPU here (checked: {', '.join(found)}); use --devices "
                         "cpu, or run on a machine with a GPU")
    return {name: list(v[1]) if isinstance(v, tuple) else [] for name, v in found.items()}


def bench(
    frameworks: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    directions: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    impls: Sequence[str] | None = None,
    out: str | Path | None = None,
    sweeps: int = DEFAULT_SWEEPS,
    processes: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    options: BlockOptions | None = None,
    progress: Progress | None = None,
    write_report: bool = True,
    shard: str | None = None,
) -> pd.DataFrame:
    """Time each implementation and return one row per implementation × mode × direction × device × dtype × size.

    Args:
        frameworks: import names (default: every installed one; missing ones are listed in meta.json).
        dtypes: NumPy names (default: float32).
        devices: "cpu" and/or "gpu" (default: cpu).
        sizes: element counts (default: 1e3, 1e5, 1e7).
        directions: "forward" and/or "forward_backward" (default: both).
        modes: "eager", "compiled" (every compiled path) or mode names such as "jax.jit" (default: all).
        impls: implementation ids, or ["all"] (default: each framework's own logits API).
        out: the run folder: a new one, or one holding an audit (its statuses go beside the speeds).
        sweeps: interleaved sweeps; each gives every configuration one block of rounds.
        processes: worker processes per framework; sweep s is timed in process s mod `processes`, so that one
            process's luck (the same code can run 30–50 % slower in one process than in the next) is a sample,
            not the run's result. Default 3 (or `sweeps`, when fewer); at most `sweeps`.
        threads: threads (and CPUs) for every framework (default: every CPU this process may use).
        seed: seed of the inputs.
        options: pytest-benchmark's per-block options.
        progress: callback (done, total, what).
        write_report: also write report.md and report.html into the run folder.
        shard: "i/n": time part i of n of the (device, dtype, size) groups.
    """
    adapters = resolve_frameworks(frameworks)
    part = _shard(shard)
    missing = [name for name, adapter in adapters.items() if not adapter.is_available()]
    adapters = {name: adapter for name, adapter in adapters.items() if adapter.is_available()}
    if not adapters:
        raise UsageError("no framework is installed; install one (pip install 'bce-harness[torch]')")
    chosen_dtypes = _choose("dtype", dtypes, list(DTYPES)) if dtypes is not None else ["float32"]
    chosen_devices = _choose("device", devices, DEVICES) if devices is not None else ["cpu"]
    chosen_directions = _choose("direction", directions, DIRECTIONS) if directions is not None else list(DIRECTIONS)
    known_modes = list(dict.fromkeys(mode for adapter in adapters.values() for mode in adapter.modes))
    chosen_modes = _choose("mode", modes, [*known_modes, "compiled"]) if modes is not None else None
    known_impls = [impl.impl for adapter in adapters.values() for impl in adapter.implementations]
    chosen_impls = None if impls is None else (known_impls if list(impls) == ["all"] else
                                                _choose("implementation", impls, [*known_impls, "all"]))
    chosen_sizes = sorted(set(sizes)) if sizes is not None else list(BENCH_SIZES)
    if not chosen_sizes or min(chosen_sizes) < 1:
        raise UsageError(f"--sizes must be positive integers such as 1e3,1e5; got {sizes}")
    if sweeps < 2:
        raise UsageError(f"--sweeps must be at least 2 (ratios need a spread); got {sweeps}")
    processes = min(DEFAULT_PROCESSES, sweeps) if processes is None else processes
    if not 1 <= processes <= sweeps:
        raise UsageError(f"--processes must be from 1 to the number of sweeps ({sweeps}): each process times whole "
                         f"sweeps; got {processes}")
    available_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    threads = threads if threads is not None else max(1, len(available_cpus) or (os.cpu_count() or 1))
    if threads < 1 or (available_cpus and threads > len(available_cpus)):
        raise UsageError(f"--threads {threads}: this process may use {len(available_cpus)} CPUs; choose 1 to "
                         f"{len(available_cpus)}")
    devices_of = _check_gpu(adapters, chosen_devices)
    configs = shard_bench(bench_configs(adapters, chosen_impls, chosen_modes, chosen_directions, chosen_devices,
                                        chosen_dtypes, chosen_sizes), part)
    # a framework without the device has nothing to time there (numpy on a GPU): left out, and said so in meta
    skipped = sorted({f"{c.framework} has no {c.device}" for c in configs
                      if c.device != "cpu" and c.device not in devices_of.get(c.framework, [c.device])})
    configs = [c for c in configs if f"{c.framework} has no {c.device}" not in skipped]
    if not configs:
        raise UsageError("nothing to time: no chosen framework has the chosen implementations and modes"
                         + (f" in shard {part}" if part else ""))
    options = options or BlockOptions()
    run_id = new_run_id()
    settings: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "frameworks": list(adapters),
        "unavailable": missing, "skipped": skipped, "dtypes": chosen_dtypes, "devices": chosen_devices,
        "sizes": chosen_sizes,
        "directions": chosen_directions, "modes": chosen_modes or "all", "impls": chosen_impls or "default",
        "sweeps": sweeps, "processes": processes, "seed": seed, "block_options": options.as_dict(),
        "shard": str(part) if part else None,
        "threads": {"requested": threads, "cpus": available_cpus[:threads]}, "complete": False,
    }
    meta = {"run_id": run_id, "kind": "bench", "created": settings["created"], "seed": seed,
            "bench": settings}
    folder = Path(out) if out is not None else Path("runs") / run_id
    store = RunStore.for_bench(folder, meta, collect_environment)  # an audit's folder has its scan already
    return _run_bench(store, settings, configs, adapters, options, progress=progress, write_report=write_report)


def resume_bench(run_dir: str | Path, progress: Progress | None = None, write_report: bool = True) -> pd.DataFrame:
    """Finish an interrupted benchmark in its folder: the (device, dtype, size) groups its journal holds whole are
    kept, the rest are timed again (ratios are taken within one pass over a group)."""
    store = RunStore(run_dir)
    settings = store.read_meta().get("bench")
    if not isinstance(settings, dict):
        raise UsageError(f"{str(run_dir)!r} holds no benchmark; --resume continues a bench in its own folder")
    if settings.get("complete"):
        raise UsageError(f"{str(run_dir)!r}: its benchmark is complete already; there is nothing to resume")
    adapters = resolve_frameworks(settings["frameworks"])
    modes = None if settings["modes"] == "all" else settings["modes"]
    impls = None if settings["impls"] == "default" else settings["impls"]
    configs = shard_bench(bench_configs(adapters, impls, modes, settings["directions"], settings["devices"],
                                        settings["dtypes"], settings["sizes"]), _shard(settings.get("shard")))
    skipped = set(settings.get("skipped", []))
    configs = [c for c in configs if f"{c.framework} has no {c.device}" not in skipped]
    replay = store.journal_rows(BENCH_JOURNAL)
    settings["resumed"] = [*settings.get("resumed", []), {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                                                          "records_kept": len(replay)}]
    store.update_meta(bench=settings)
    return _run_bench(store, settings, configs, adapters, BlockOptions(**settings["block_options"]),
                      progress=progress, write_report=write_report, replay=replay)


def _load_average() -> float | None:
    """The machine's 1-minute load average: other work on the machine while timing shows up here."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _run_bench(store: RunStore, settings: dict[str, Any], configs: list[BenchConfig],
               adapters: dict[str, type[Adapter]], options: BlockOptions, *, progress: Progress | None,
               write_report: bool, replay: Sequence[dict[str, Any]] = ()) -> pd.DataFrame:
    """Time (the rest of) the configurations into the store and write bench.parquet, bench.json and the reports."""
    started, load_before = time.time(), _load_average()
    run_id = store.read_meta()["run_id"]  # an audit's folder keeps its run id
    (store.path / "logs").mkdir(exist_ok=True)
    threads = settings["threads"]
    result = run_bench(configs, adapters, sweeps=settings["sweeps"], processes=settings.get("processes", 1),
                       threads=threads["requested"],
                       cpus=threads["cpus"] or None, seed=settings["seed"], options=options,
                       log_dir=store.path / "logs", progress=progress, replay=replay,
                       journal=lambda record: store.append([record], BENCH_JOURNAL))
    store.sync(BENCH_JOURNAL)
    frame = as_frame(result.rows, run_id)
    if store.has_conformance():
        statuses = conformance_status(store.conformance())
        frame = frame.drop(columns=["status", "status_detail"]).merge(
            statuses, on=["impl", "dtype", "device", "mode"], how="left")[BENCH_COLUMNS]
        frame[["status", "status_detail"]] = frame[["status", "status_detail"]].fillna("")
    store.write_bench(frame, benchmark_document(result.entries))
    settings.update(complete=True, wall_seconds=round(time.time() - started, 3), baselines=result.baselines,
                    workers=result.workers, load_average={"start": load_before, "end": _load_average()})
    settings["threads"]["frameworks"] = {name: {"cpus": info.get("cpus"), **info.get("threads", {})}
                                         for name, info in result.workers.items() if "cpus" in info}
    store.update_meta(bench=settings)
    if write_report:
        from reports import write_reports

        write_reports(store.path)
    frame.attrs["run_dir"] = str(store.path)
    return frame


GPU_SWEEP_DTYPES = ("float32", "bfloat16")
GPU_SWEEP_SIZES = (10_000, 1_000_000, 100_000_000)
GPU_AUDIT_SKIPS = ("scale",)  # the long reductions: minutes of reference work that a quick check does not need


def gpu_sweep(out: str | Path | None = None, frameworks: Sequence[str] | None = None, jobs: int = DEFAULT_JOBS,
              progress: Progress | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The GPU check in one call: a quick audit on the GPU (every family but the long reductions, float32 and
    bfloat16), then the benchmark of every framework present (float32 and bfloat16; 1e4, 1e6 and 1e8 elements;
    forward and forward+backward; eager and compiled) into the same folder, so each speed row carries its
    accuracy status. Returns (conformance, bench)."""
    adapters = resolve_frameworks(frameworks)
    present = [name for name, adapter in adapters.items() if adapter.is_available()]
    _check_gpu({name: adapters[name] for name in present}, ["gpu"])
    families = [name for name in family_names() if name not in GPU_AUDIT_SKIPS]
    conformance = audit(frameworks=present, dtypes=GPU_SWEEP_DTYPES, devices=["gpu"], families=families,
                        out=out, jobs=jobs, progress=progress, write_report=False)
    folder = conformance.attrs["run_dir"]
    speed = bench(frameworks=present, dtypes=GPU_SWEEP_DTYPES, devices=["gpu"], sizes=GPU_SWEEP_SIZES,
                  out=folder, progress=progress)
    return conformance, speed
