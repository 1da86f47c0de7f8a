"""The Python API that the CLI and notebooks share: `audit(...)` and `bench(...)` return pandas DataFrames and
write the same run folder."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cases import DTYPES, Case, case_entry, family_names
from harness import options as choice
from harness.benchmark import DEFAULT_PROCESSES, BenchConfig, BlockOptions, bench_configs, shard_bench
from harness.benchmark import run_into as bench_into
from harness.conformance import Progress, Settings, shard_cases
from harness.conformance import run_into as audit_into
from harness.findings import read_findings, record_findings
from harness.options import DEFAULT_JOBS, DEFAULT_SWEEPS, DEFAULT_TIMEOUT, DEVICES, UsageError
from harness.own import LossCheck, check_loss, registered_callables
from harness.store.environment import collect_environment
from harness.store.folder import RunStore
from harness.store.schema import BENCH_JOURNAL, CellKey
from harness.verdict.conventions import Convention, load_conventions
from harness.verdict.oracle import ORACLE_VERSION
from harness.verdict.tolerance import POLICY
from implementations import DIRECTIONS, REDUCTIONS, Adapter

if TYPE_CHECKING:  # the fuzzer loads Hypothesis: only a fuzz run imports it
    from harness.fuzzer import FuzzOutcome, Search

__all__ = [
    "DEFAULT_PROCESSES",
    "DEFAULT_SWEEPS",
    "DEFAULT_TIMEOUT",
    "DEVICES",
    "FUZZ_CASES",
    "GPU_SWEEP_DTYPES",
    "GPU_SWEEP_SIZES",
    "LossCheck",
    "UsageError",
    "audit",
    "bench",
    "check_loss",
    "fuzz",
    "gpu_sweep",
    "new_run_id",
    "resume_audit",
    "resume_bench",
]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    callables: Sequence[str] = (),
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
        callables: your own functions, `module:function[:form[:framework]]` (see implementations.own), audited
            beside the frameworks, each in its own worker; added to `frameworks` when that is given.
    """
    with registered_callables(callables) as own:
        chosen = [*frameworks, *(spec.name for spec in own)] if frameworks is not None else None
        return _audit(chosen, dtypes, devices, families, cases, out, seed=seed, full=full, jobs=jobs,
                      use_cache=use_cache, progress=progress, write_report=write_report, shard=shard, timeout=timeout,
                      memory_limit=memory_limit, callables=[spec.text() for spec in own])


def _audit(frameworks: Sequence[str] | None, dtypes: Sequence[str] | None, devices: Sequence[str] | None,
           families: Sequence[str] | None, cases: str | Path | Sequence[Case] | None, out: str | Path | None, *,
           seed: int, full: bool, jobs: int | None, use_cache: bool, progress: Progress | None, write_report: bool,
           shard: str | None, timeout: float | None, memory_limit: float | None, callables: list[str]
           ) -> pd.DataFrame:
    began = time.perf_counter()
    adapters = choice.resolve_frameworks(frameworks)
    part = choice.shard(shard)
    workers = choice.jobs(DEFAULT_JOBS if jobs is None else jobs)
    gib = choice.memory_limit(memory_limit, workers)
    chosen = {"dtypes": choice.choose("dtype", dtypes, list(DTYPES)),
              "devices": choice.chosen_devices(devices)}
    all_cases = choice.chosen_cases(cases, families, seed)
    run_cases = shard_cases(all_cases, part)
    if not run_cases:
        raise UsageError(f"--shard {part}: there are only {len(all_cases)} cases; use fewer shards")
    choice.check_gpu(adapters, chosen["devices"])
    conventions = load_conventions()
    run_id = new_run_id()
    meta: dict[str, Any] = {
        "run_id": run_id, "kind": "audit", "created": _now(), "seed": seed, "frameworks": list(adapters), **chosen,
        "case_source": str(cases) if isinstance(cases, str | Path) else ("custom" if cases else "builtin"),
        **_audit_settings(run_cases, conventions, full=full, workers=workers, timeout=timeout, gib=gib),
        "shard": str(part) if part else None, "unsharded_case_digest": _case_digest(all_cases),
        "callables": callables,
        **collect_environment(),
    }
    store = RunStore.create(Path(out) if out is not None else Path("runs") / run_id, meta)
    store.write_cases(run_cases, seed)
    (store.path / "logs").mkdir()
    return _audit_into(store, meta, run_cases, adapters, conventions, use_cache=use_cache, progress=progress,
                       write_report=write_report, setup_seconds=time.perf_counter() - began)


def _audit_settings(cases: Sequence[Case], conventions: Sequence[Convention], *, full: bool, workers: int,
                    timeout: float | None, gib: float | None) -> dict[str, Any]:
    """The settings an audit's meta.json records, beside its selection and environment."""
    return {"reductions": list(REDUCTIONS), "families": sorted({c.family for c in cases}), "case_count": len(cases),
            "case_digest": _case_digest(cases), "oracle_version": ORACLE_VERSION, "tolerance_policy": POLICY,
            "full": full, "conventions": [_described(c) for c in conventions], "worker_threads": 1, "jobs": workers,
            "timeout_s": DEFAULT_TIMEOUT if timeout is None else timeout, "memory_limit_gib": gib}


def _described(convention: Convention) -> dict[str, Any]:
    return {"id": convention.id, "impls": list(convention.impls), "quantity": convention.quantity,
            "kind": convention.kind, "reason": convention.reason, "link": convention.link,
            **({"dtypes": list(convention.dtypes)} if convention.dtypes else {}), **convention.parameters}


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
    with registered_callables(meta.get("callables") or []):
        return _resumed(store, meta, jobs=jobs, use_cache=use_cache, progress=progress, write_report=write_report,
                        timeout=timeout, memory_limit=memory_limit)


def _resumed(store: RunStore, meta: dict[str, Any], *, jobs: int | None, use_cache: bool, progress: Progress | None,
             write_report: bool, timeout: float | None, memory_limit: float | None) -> pd.DataFrame:
    cases = list(store.read_cases().values())
    adapters = choice.resolve_frameworks(meta.get("frameworks"))
    rows = store.journal_rows()
    recorded = frozenset(CellKey.of(row) for row in rows)
    workers, timeout, gib = choice.resume_limits(meta, jobs, timeout, memory_limit)
    changes = {"resumed": [*meta.get("resumed", []), {"at": _now(), "rows_kept": len(rows)}], "jobs": workers,
               "timeout_s": timeout, "memory_limit_gib": gib}
    meta = store.update_meta(**changes)
    (store.path / "logs").mkdir(exist_ok=True)
    return _audit_into(store, meta, cases, adapters, load_conventions(), use_cache=use_cache, progress=progress,
                       write_report=write_report, recorded=recorded)


def _audit_into(store: RunStore, meta: dict[str, Any], cases: list[Case], adapters: dict[str, type[Adapter]],
                conventions: list[Convention], *, use_cache: bool, progress: Progress | None, write_report: bool,
                recorded: frozenset[CellKey] = frozenset(), setup_seconds: float = 0.0) -> pd.DataFrame:
    gib = meta["memory_limit_gib"]
    settings = Settings(jobs=meta["jobs"], use_cache=use_cache, silence_timeout=meta["timeout_s"],
                        memory_limit=None if gib is None else int(gib * 2**30), log_dir=store.path / "logs")
    frame = audit_into(store, cases, adapters, conventions, settings, progress=progress, recorded=recorded,
                       setup_seconds=setup_seconds)
    record_findings(store.path, frame, {case.name: case for case in cases})  # its seconds go into the profile
    if write_report:
        from reports import write_reports

        began = time.perf_counter()
        write_reports(store.path)
        profile = store.read_meta()["profile"]  # the reports' own time, after report.md, which cannot hold it
        profile["main"]["report_s"] = round(time.perf_counter() - began, 2)
        store.update_meta(profile=profile)
    return frame


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
    known = choice.resolve_frameworks(frameworks)
    adapters = {name: adapter for name, adapter in known.items() if adapter.is_available()}
    if not adapters:
        raise UsageError("no framework is installed; install one (pip install 'bce-harness[torch]')")
    part = choice.shard(shard)
    settings: dict[str, Any] = {
        "created": _now(), "frameworks": list(adapters),
        "unavailable": [name for name in known if name not in adapters],
        "dtypes": choice.choose("dtype", dtypes, list(DTYPES)) if dtypes is not None else ["float32"],
        "devices": choice.chosen_devices(devices),
        "sizes": choice.chosen_sizes(sizes),
        "directions": list(DIRECTIONS) if directions is None else choice.choose("direction", directions, DIRECTIONS),
        "modes": choice.chosen_modes(adapters, modes) or "all",
        "impls": choice.chosen_impls(adapters, impls) or "default",
        "sweeps": sweeps, "processes": choice.processes(processes, sweeps, DEFAULT_PROCESSES), "seed": seed,
        "block_options": (options or BlockOptions()).as_dict(), "shard": str(part) if part else None,
        "complete": False,
    }
    threads, cpus = choice.chosen_threads(threads)
    settings["threads"] = {"requested": threads, "cpus": cpus}
    configs, settings["skipped"] = _bench_plan(adapters, settings, choice.check_gpu(adapters, settings["devices"]))
    if not configs:
        raise UsageError("nothing to time: no chosen framework has the chosen implementations and modes"
                         + (f" in shard {part}" if part else ""))
    run_id = new_run_id()
    meta = {"run_id": run_id, "kind": "bench", "created": settings["created"], "seed": seed, "bench": settings}
    folder = Path(out) if out is not None else Path("runs") / run_id
    store = RunStore.for_bench(folder, meta, collect_environment)  # an audit's folder has its scan already
    return _bench_into(store, configs, adapters, progress=progress, write_report=write_report)


def _bench_plan(adapters: dict[str, type[Adapter]], settings: dict[str, Any],
                devices_of: dict[str, list[str]] | None = None) -> tuple[list[BenchConfig], list[str]]:
    """The configurations of the settings, and what was left out: a framework without the device has nothing to
    time there (numpy on a GPU), said so in meta. `devices_of`: each framework's devices when a GPU was asked
    for; None to leave out what the settings' `skipped` already names (a resumed run)."""
    modes = None if settings["modes"] == "all" else settings["modes"]
    impls = None if settings["impls"] == "default" else settings["impls"]
    configs = shard_bench(bench_configs(adapters, impls, modes, settings["directions"], settings["devices"],
                                        settings["dtypes"], settings["sizes"]), choice.shard(settings.get("shard")))
    if devices_of is None:
        skipped = set(settings.get("skipped", []))
    else:
        skipped = {f"{c.framework} has no {c.device}" for c in configs
                   if c.device != "cpu" and c.device not in devices_of.get(c.framework, [c.device])}
    return [c for c in configs if f"{c.framework} has no {c.device}" not in skipped], sorted(skipped)


def resume_bench(run_dir: str | Path, progress: Progress | None = None, write_report: bool = True) -> pd.DataFrame:
    """Finish an interrupted benchmark in its folder: the (device, dtype, size) groups its journal holds whole are
    kept, the rest are timed again (ratios are taken within one pass over a group)."""
    store = RunStore(run_dir)
    settings = store.read_meta().get("bench")
    if not isinstance(settings, dict):
        raise UsageError(f"{str(run_dir)!r} holds no benchmark; --resume continues a bench in its own folder")
    if settings.get("complete"):
        raise UsageError(f"{str(run_dir)!r}: its benchmark is complete already; there is nothing to resume")
    adapters = choice.resolve_frameworks(settings["frameworks"])
    configs, _ = _bench_plan(adapters, settings)
    replay = store.journal_rows(BENCH_JOURNAL)
    settings["resumed"] = [*settings.get("resumed", []), {"at": _now(), "records_kept": len(replay)}]
    store.update_meta(bench=settings)
    return _bench_into(store, configs, adapters, progress=progress, write_report=write_report, replay=replay)


def _bench_into(store: RunStore, configs: list[BenchConfig], adapters: dict[str, type[Adapter]], *,
                progress: Progress | None, write_report: bool,
                replay: Sequence[dict[str, Any]] = ()) -> pd.DataFrame:
    frame = bench_into(store, configs, adapters, progress=progress, replay=replay)
    if write_report:
        from reports import write_reports

        write_reports(store.path)
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
    adapters = choice.resolve_frameworks(frameworks)
    present = [name for name, adapter in adapters.items() if adapter.is_available()]
    choice.check_gpu({name: adapters[name] for name in present}, ["gpu"])
    families = [name for name in family_names() if name not in GPU_AUDIT_SKIPS]
    conformance = audit(frameworks=present, dtypes=GPU_SWEEP_DTYPES, devices=["gpu"], families=families,
                        out=out, jobs=jobs, progress=progress, write_report=False)
    folder = conformance.attrs["run_dir"]
    speed = bench(frameworks=present, dtypes=GPU_SWEEP_DTYPES, devices=["gpu"], sizes=GPU_SWEEP_SIZES,
                  out=folder, progress=progress)
    return conformance, speed


FUZZ_CASES = "fuzz-cases.json"  # in a fuzz run's folder: the minimal cases, in the --cases format


def fuzz(
    frameworks: Sequence[str] | None = None,
    impls: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    quantities: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    device: str = "cpu",
    max_examples: int = 100,
    budget: float | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    size: int = 64,
    finite: bool = False,
    use_cache: bool = True,
    progress: Progress | None = None,
    write_report: bool = True,
) -> pd.DataFrame:
    """Search for the inputs where each implementation is worst, shrink every distinct failure to a minimal case
    with its onset, and audit those cases into a run folder. Returns the run's findings (with `onset`).

    Args:
        frameworks: import names (default: every installed one).
        impls: implementation ids (default: every framework's own APIs and formulas).
        dtypes: one search per dtype and input form (default: all four).
        quantities: loss, grad and the further derivatives to judge (default: loss and grad).
        modes: "eager", "compiled" or mode names (default: every mode; eager always runs, compiled paths are
            compared with it).
        device: "cpu" or "gpu".
        max_examples: batches per search.
        budget: seconds the searches may take in all (they stop early, and meta.json says so; what they found is
            still shrunk). With a budget, a run is not reproducible by its seed alone.
        seed: Hypothesis's seed: the same seed and max_examples give the same cases.
        out: the run folder (default: runs/<run_id>/); it holds `fuzz-cases.json` for `audit --cases`.
        size: elements per batch (one shape: each compiled path compiles once).
        finite: draw no ±inf or NaN.
    """
    from harness.fuzzer import Prober, run_fuzz

    adapters = choice.installed_frameworks(frameworks)
    for name, value, integer in (("max-examples", max_examples, True), ("budget", budget, False),
                                 ("size", size, True)):
        choice.positive(name, value, integer)
    plans, settings = _fuzz_plans(adapters, impls, dtypes, quantities, modes, device, size, finite)
    settings.update(max_examples=max_examples, budget_s=budget, seed=seed)
    run_id = new_run_id()
    store = RunStore.create(Path(out) if out is not None else Path("runs") / run_id,
                            {"run_id": run_id, "kind": "audit", "created": _now(), "seed": seed, "fuzz": settings})
    (store.path / "logs").mkdir()
    prober = Prober(adapters, load_conventions(), use_cache=use_cache, log_dir=store.path / "logs")
    try:
        outcome = run_fuzz(prober, [plan for plan in plans if plan.impls], max_examples, seed, budget, progress)
    finally:
        prober.close()
    return _fuzz_into(store, adapters, outcome, settings, use_cache=use_cache, progress=progress,
                      write_report=write_report)


def _fuzz_plans(adapters: dict[str, type[Adapter]], impls: Sequence[str] | None, dtypes: Sequence[str] | None,
                quantities: Sequence[str] | None, modes: Sequence[str] | None, device: str, size: int,
                finite: bool) -> tuple[list[Search], dict[str, Any]]:
    """The searches a fuzz run makes (checked choices), and its settings for meta.json."""
    from harness.fuzzer import searches

    chosen = choice.fuzz_impls(adapters, impls)
    dtypes = choice.choose("dtype", dtypes, list(DTYPES))
    wanted = tuple(choice.choose("quantity", quantities or ("loss", "grad"), choice.FUZZ_QUANTITIES))
    by_impl = choice.fuzz_modes(adapters, chosen, modes)
    choice.check_gpu(adapters, [choice.chosen_devices([device])[0]])
    plans = [_supported(plan, adapters) for plan in searches(
        [i.impl for i in chosen], {i.impl: i.input_form for i in chosen}, by_impl, dtypes, wanted, size, finite,
        device)]
    settings = {"frameworks": list(adapters), "impls": [i.impl for i in chosen], "dtypes": dtypes,
                "quantities": list(wanted), "modes": {k: list(v) for k, v in by_impl.items()}, "device": device,
                "size": size, "finite": finite}
    return plans, settings


def _supported(plan: Search, adapters: dict[str, type[Adapter]]) -> Search:
    """A search narrowed to the implementations whose framework has its dtype."""
    has = {impl.impl for adapter in adapters.values() if plan.dtype in adapter.dtypes
           for impl in adapter.implementations}
    return replace(plan, impls=tuple(impl for impl in plan.impls if impl in has))


def _fuzz_into(store: RunStore, adapters: dict[str, type[Adapter]], outcome: FuzzOutcome, settings: dict[str, Any], *,
               use_cache: bool, progress: Progress | None, write_report: bool) -> pd.DataFrame:
    """The minimal cases into `fuzz-cases.json`, then audited into the run folder (their rows, findings with
    onsets, reports), and each failure's replayed status checked against the fuzzer's."""
    from harness.fuzzer import minimal_case

    runs_on = {impl.impl: impl.runs_on for adapter in adapters.values() for impl in adapter.implementations}
    pairs = sorted(((minimal_case(m, settings["seed"], runs_on[m.problem.config.impl]), m) for m in outcome.minimal),
                   key=lambda pair: pair[0].name)
    cases = [case for case, _ in pairs]
    (store.path / FUZZ_CASES).write_text(json.dumps({"cases": [case_entry(c) for c in cases]}, indent=1) + "\n",
                                         encoding="utf-8")
    failures = [{"case": case.name, "finding_id": m.problem.finding_id, "status": m.problem.status,
                 "check": m.problem.check, **asdict(m.problem.config),
                 "onset": m.onset.text() if m.onset else m.no_onset,
                 "onset_at": {k: getattr(m.onset, k) for k in ("first", "last", "end")} if m.onset else None,
                 "steps": m.steps, "seen": m.found.seen} for case, m in pairs]
    onsets: dict[str, str] = {}  # per finding, each implementation's onset (one finding may hold several)
    for m in sorted(outcome.minimal, key=lambda m: m.problem.config.impl):
        if m.onset:
            text = f"{m.problem.config.impl}: {m.onset.text()}"
            onsets[m.problem.finding_id] = f"{onsets[m.problem.finding_id]}; {text}" \
                if m.problem.finding_id in onsets else text
    fuzz_meta = {**settings, "searches": outcome.searches, "stopped_early": outcome.stopped_early,
                 "search_s": round(outcome.search_seconds, 2), "shrink_s": round(outcome.shrink_seconds, 2),
                 "workers": outcome.workers, "failures": failures, "onsets": onsets}
    conventions = load_conventions()
    meta = store.update_meta(fuzz=fuzz_meta, frameworks=settings["frameworks"], devices=[settings["device"]],
                             dtypes=sorted({c.dtypes[0] for c in cases if c.dtypes}, key=list(DTYPES).index),
                             case_source=FUZZ_CASES, **_audit_settings(cases, conventions, full=False,
                                                                       workers=DEFAULT_JOBS, timeout=None, gib=None),
                             **collect_environment())
    if not cases:
        store.update_meta(complete=True, rows=0, findings=0)
        frame = pd.DataFrame()
        frame.attrs["run_dir"] = str(store.path)
        return frame
    store.write_cases(cases, settings["seed"])
    table = _audit_into(store, meta, cases, adapters, conventions, use_cache=use_cache, progress=progress,
                        write_report=write_report)
    _replayed(store, table, failures)
    found = read_findings(store.path)
    found.attrs["run_dir"] = str(store.path)
    return found


def _replayed(store: RunStore, table: pd.DataFrame, failures: list[dict[str, Any]]) -> None:
    """Each failure's status in the audit of its minimal case, beside the fuzzer's (a difference is a warning
    in meta.json: a framework that answers differently in a fresh process)."""
    keyed = table.set_index(["case", "impl", "dtype", "reduction", "mode", "quantity", "check"])["status"]
    differing = []
    for failure in failures:
        key = (failure["case"], failure["impl"], failure["dtype"], failure["reduction"], failure["mode"],
               failure["quantity"], failure["check"])
        failure["replayed"] = str(keyed.get(key, "missing"))
        if failure["replayed"] != failure["status"]:
            differing.append(failure["case"])
    fuzz_meta = store.read_meta()["fuzz"]
    store.update_meta(fuzz={**fuzz_meta, "failures": failures, "not_replayed": differing})
