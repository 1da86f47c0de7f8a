"""What users choose, checked before any work starts: names (frameworks, dtypes, devices, families, modes,
implementations), sizes, counts and limits. Every bad choice is a `UsageError` with one line naming it and the
fix; the CLI and the Python API share these checks."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cases import BadInput, Case, builtin_cases, family_names, load_case_file
from harness.store.schema import Shard
from harness.workers.devices import known_devices
from harness.workers.messages import Hello
from implementations import DERIVATIVES, Adapter, Implementation, adapter_classes

__all__ = [
    "BENCH_SIZES",
    "DEFAULT_JOBS",
    "DEFAULT_SWEEPS",
    "DEFAULT_TIMEOUT",
    "DEVICES",
    "FUZZ_QUANTITIES",
    "UsageError",
    "check_gpu",
    "choose",
    "chosen_cases",
    "chosen_devices",
    "chosen_impls",
    "chosen_modes",
    "chosen_sizes",
    "chosen_threads",
    "fuzz_impls",
    "fuzz_modes",
    "installed_frameworks",
    "jobs",
    "memory_limit",
    "positive",
    "processes",
    "resolve_frameworks",
    "resume_limits",
    "shard",
]

DEVICES = ("cpu", "gpu")
DEFAULT_TIMEOUT = 600.0  # seconds without a result from a worker: its cell is a `timeout`
DEFAULT_JOBS = 2  # framework workers at once
BENCH_SIZES = (1_000, 100_000, 10_000_000)
FUZZ_QUANTITIES = ("loss", "grad", *DERIVATIVES)
DEFAULT_SWEEPS = 10  # median of 10 side-by-side ratios: two runs on a noisy 2-core machine agree within ±15 %


class UsageError(BadInput):
    """Bad usage or bad input: the message names the problem and the fix (the CLI exits with code 2)."""


def choose(noun: str, given: Sequence[str] | None, known: Sequence[str]) -> list[str]:
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
    chosen = choose("framework", frameworks, list(classes))
    if frameworks is not None:
        missing = [classes[name] for name in chosen if not classes[name].is_available()]
        if missing:
            raise UsageError(f"framework {missing[0].framework!r}: {missing[0].unavailable_reason()}, or leave it "
                             "out of --frameworks")
    return {name: classes[name] for name in chosen}


def chosen_cases(cases: str | Path | Sequence[Case] | None, families: Sequence[str] | None, seed: int) -> list[Case]:
    """A case file's cases, given cases, or the built-in families (all by default)."""
    if cases is not None and families is not None:
        raise UsageError("--cases replaces the built-in families; give either --cases or --families")
    if isinstance(cases, str | Path):
        return load_case_file(cases)
    if cases is not None:
        return list(cases)
    return builtin_cases(seed, choose("family", families, family_names()))


def chosen_devices(devices: Sequence[str] | None) -> list[str]:
    """Devices to run on: the CPU by default (a GPU is asked for, never assumed)."""
    return ["cpu"] if devices is None else choose("device", devices, DEVICES)


def jobs(count: int) -> int:
    if count < 1:
        raise UsageError(f"--jobs {count}: give 1 or more framework workers")
    return count


def memory_limit(gib: float | None, workers: int) -> float | None:
    """GiB a worker may hold resident: given, or the machine's memory shared by the workers (and this process)."""
    if gib is not None:
        if gib <= 0:
            raise UsageError(f"--memory-limit {gib}: give a positive number of GiB")
        return gib
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return round(total / 2**30 / (max(1, workers) + 1), 1)


def resume_limits(meta: dict[str, Any], workers: int | None = None, timeout: float | None = None,
                  gib: float | None = None) -> tuple[int, float, float | None]:
    """Workers, per-cell time limit and memory limit for a resumed audit: the run's own, unless given anew."""
    workers = jobs(workers if workers is not None else int(meta.get("jobs") or DEFAULT_JOBS))
    timeout = timeout if timeout is not None else float(meta.get("timeout_s") or DEFAULT_TIMEOUT)
    if gib is None and meta.get("memory_limit_gib") is not None:
        gib = float(meta["memory_limit_gib"])
    return workers, timeout, memory_limit(gib, workers)


def shard(text: str | None) -> Shard | None:
    return None if text is None else Shard.parse(text)


@functools.cache
def _devices_found(adapters: tuple[tuple[str, type[Adapter]], ...]) -> dict[str, Hello | str]:
    """The devices each framework sees (from the cache, else a worker per framework), once per process: gpu-sweep
    checks the GPU for itself, its audit and its bench."""
    return known_devices(dict(adapters))


def check_gpu(adapters: dict[str, type[Adapter]], devices: Sequence[str]) -> dict[str, list[str]]:
    """Each framework's devices when a GPU is asked for (else {}); `--devices gpu` where no installed framework
    sees a GPU is bad usage."""
    if "gpu" not in devices:
        return {}
    found = _devices_found(tuple((n, a) for n, a in adapters.items() if a.is_available()))
    seen = {name: list(hello.devices) if isinstance(hello, Hello) else [] for name, hello in found.items()}
    if not any("gpu" in devices_of for devices_of in seen.values()):
        raise UsageError(f"no installed framework sees a GPU here (checked: {', '.join(found)}); use --devices "
                         "cpu, or run on a machine with a GPU")
    return seen


def chosen_modes(adapters: dict[str, type[Adapter]], modes: Sequence[str] | None) -> list[str] | None:
    """Mode names, "compiled" for every compiled path; None (every mode) by default."""
    known = list(dict.fromkeys(mode for adapter in adapters.values() for mode in adapter.modes))
    return None if modes is None else choose("mode", modes, [*known, "compiled"])


def chosen_impls(adapters: dict[str, type[Adapter]], impls: Sequence[str] | None) -> list[str] | None:
    """Implementation ids, or every one for ["all"]; None (each framework's own logits API) by default."""
    known = [impl.impl for adapter in adapters.values() for impl in adapter.implementations]
    if impls is None:
        return None
    return known if list(impls) == ["all"] else choose("implementation", impls, [*known, "all"])


def chosen_sizes(sizes: Sequence[int] | None) -> list[int]:
    chosen = sorted(set(sizes)) if sizes is not None else list(BENCH_SIZES)
    if not chosen or min(chosen) < 1:
        raise UsageError(f"--sizes must be positive integers such as 1e3,1e5; got {sizes}")
    return chosen


def processes(count: int | None, sweeps: int, default: int) -> int:
    """Worker processes per framework: each times whole sweeps, so at most `sweeps` (and at least 2 sweeps)."""
    if sweeps < 2:
        raise UsageError(f"--sweeps must be at least 2 (ratios need a spread); got {sweeps}")
    count = min(default, sweeps) if count is None else count
    if not 1 <= count <= sweeps:
        raise UsageError(f"--processes must be from 1 to the number of sweeps ({sweeps}): each process times whole "
                         f"sweeps; got {count}")
    return count


def chosen_threads(threads: int | None) -> tuple[int, list[int]]:
    """Threads for every framework (default: every CPU this process may use), and the CPUs they are pinned to."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    threads = threads if threads is not None else max(1, len(available) or (os.cpu_count() or 1))
    if threads < 1 or (available and threads > len(available)):
        raise UsageError(f"--threads {threads}: this process may use {len(available)} CPUs; choose 1 to "
                         f"{len(available)}")
    return threads, available[:threads]


def installed_frameworks(frameworks: Sequence[str] | None) -> dict[str, type[Adapter]]:
    """The chosen frameworks that are installed (all installed ones by default): what a fuzz run can call."""
    adapters = {name: a for name, a in resolve_frameworks(frameworks).items() if a.is_available()}
    if not adapters:
        raise UsageError("no framework is installed; install one (pip install 'bce-harness[torch]')")
    return adapters


def _fuzzable(impl: Implementation) -> bool:
    """A framework's own BCE API or a formula (in a context such as autocast, too): not an API there only for an
    identity's other side (a softmax or focal loss, judged by the identity) or for the σ computed inside a
    compiled function (judged against eager only)."""
    return impl.runs_on != "relation" and not impl.sigmoid_inside


def _fuzzed_by_default(impl: Implementation) -> bool:
    """Fuzzable, and cheap per batch: an exported model (an export per shape) is fuzzed only when named."""
    return _fuzzable(impl) and impl.runs_on != "path"


def fuzz_impls(adapters: dict[str, type[Adapter]], impls: Sequence[str] | None) -> list[Implementation]:
    """The implementations to fuzz: every fuzzable one of the frameworks by default."""
    every = [impl for adapter in adapters.values() for impl in adapter.implementations]
    if impls is None:
        return [impl for impl in every if _fuzzed_by_default(impl)]
    chosen = choose("implementation", impls, [impl.impl for impl in every])
    by_id = {impl.impl: impl for impl in every}
    for name in chosen:
        if not _fuzzable(by_id[name]):
            why = "σ computed inside a compiled function" if by_id[name].sigmoid_inside else "an identity's other side"
            raise UsageError(f"implementation {name!r} is there for {why}, which the audit checks; fuzz the "
                             "frameworks' own APIs (leave out --impls for all of them)")
    return [by_id[name] for name in chosen]


def fuzz_modes(adapters: dict[str, type[Adapter]], impls: Sequence[Implementation],
               modes: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """impl → the modes it runs in: eager (what compiled paths are compared with) and the chosen compiled
    modes its framework has (every one by default)."""
    framework_of = {impl.impl: name for name, adapter in adapters.items() for impl in adapter.implementations}
    chosen = chosen_modes(adapters, modes)
    out = {}
    for impl in impls:
        own = adapters[framework_of[impl.impl]].modes
        wanted = own if chosen is None else [m for m in own if m in chosen or (m != "eager" and "compiled" in chosen)]
        out[impl.impl] = ("eager", *[m for m in wanted if m != "eager"])
    return out


def positive(name: str, value: float | None, integer: bool = False) -> None:
    """A count or a limit must be positive: one line naming the flag otherwise."""
    if value is not None and (value <= 0 or (integer and int(value) != value)):
        raise UsageError(f"--{name} {value:g}: give a positive {'integer' if integer else 'number'}")
