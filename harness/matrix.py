"""The matrix of an audit: which implementation runs which case, in which dtype, device, reduction and mode.

Capabilities come from the adapter classes (dtypes, implementations, modes); what to run of the expensive parts
(compiled paths, batch consistency, large reductions) comes from the cases' tags and the `Scope`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cases import Case
from implementations import DIRECTIONS, REDUCTIONS, Adapter

__all__ = [
    "BATCH_SIZE", "BenchConfig", "Cell", "Job", "Scope", "Shard", "batch_eligible", "bench_configs", "jobs_for",
    "shard_bench", "shard_cases",
]

BATCH_SIZE = 4099  # long enough for every vectorised main loop, odd so that the tail code runs too


class Cell(NamedTuple):
    """One computation: implementation × case × dtype × device × reduction × mode × check."""

    impl: str
    case_index: int
    dtype: str
    device: str
    reduction: str
    mode: str = "eager"
    check: str = "reference"


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker runs for one (case, dtype, implementation, device, mode, check): one call per reduction."""

    case_index: int
    dtype: str
    impl: str
    device: str
    reductions: tuple[str, ...]
    mode: str = "eager"
    check: str = "reference"

    def cells(self) -> list[Cell]:
        return [Cell(self.impl, self.case_index, self.dtype, self.device, r, self.mode, self.check)
                for r in self.reductions]


@dataclass(frozen=True, slots=True)
class Scope:
    """How much of the expensive matrix to run.

    Compiled paths cost seconds per graph (torch.compile builds one per implementation × reduction × dtype ×
    options, each a C++ compilation on the CPU), so by default they run on the cases tagged "path", in float32,
    for the mean; `full` runs them on every case in float32 for every reduction, and adds the cases tagged
    "full" (the longest reductions). The batch check and every other dtype run eagerly in both.
    """

    full: bool = False
    path_dtypes: tuple[str, ...] = ("float32",)
    path_reductions: tuple[str, ...] = ("mean",)

    @classmethod
    def default(cls) -> Scope:
        return cls()

    @classmethod
    def everything(cls) -> Scope:
        return cls(full=True, path_dtypes=("float32",), path_reductions=REDUCTIONS)

    def includes(self, case: Case) -> bool:
        return self.full or "full" not in case.tags

    def compiles(self, case: Case, dtype: str) -> bool:
        return dtype in self.path_dtypes and (self.full or "path" in case.tags)


def batch_eligible(case: Case) -> bool:
    """The batch check needs elements that stand alone: x and y of one shape, no weights."""
    return ("batch" in case.tags and case.weight is None and case.pos_weight is None
            and case.x.shape == case.y.shape and case.x.size > 0)


def jobs_for(adapter: type[Adapter], cases: Sequence[Case], dtypes: Sequence[str], devices: Sequence[str],
             scope: Scope) -> Iterator[Job]:
    """Every job of one adapter, eager first (the compiled paths are compared with the eager results)."""

    def cells() -> Iterator[tuple[str, int, Case, str, str]]:
        for impl in adapter.implementations:
            for index, case in enumerate(cases):
                if case.input_form == impl.input_form and scope.includes(case):
                    for dtype in (d for d in dtypes if case.runs_in(d)):
                        for device in devices:
                            yield impl.impl, index, case, dtype, device

    for impl, index, case, dtype, device in cells():
        yield Job(index, dtype, impl, device, REDUCTIONS)
        if batch_eligible(case):
            yield Job(index, dtype, impl, device, ("none",), check="batch")
    for mode in (m for m in adapter.modes if m != "eager"):
        for impl, index, case, dtype, device in cells():
            if scope.compiles(case, dtype):
                yield Job(index, dtype, impl, device, scope.path_reductions, mode=mode)


class BenchConfig(NamedTuple):
    """One timed configuration: an implementation in one mode, direction, device, dtype and size."""

    framework: str
    impl: str
    input_form: str
    mode: str
    direction: str
    device: str
    dtype: str
    n: int

    def label(self) -> str:
        return f"{self.impl} [{self.mode}] {self.direction} {self.device} {self.dtype} n={self.n:g}"


def bench_configs(adapters: dict[str, type[Adapter]], impls: Sequence[str] | None, modes: Sequence[str] | None,
                  directions: Sequence[str] = DIRECTIONS, devices: Sequence[str] = ("cpu",),
                  dtypes: Sequence[str] = ("float32",), sizes: Sequence[int] = (1000,)) -> list[BenchConfig]:
    """Every configuration to time, grouped by (device, dtype, size), smallest size first.

    `impls`: implementation ids, or None for each framework's default (its first logits implementation: the
    framework's own API). `modes`: mode names, "compiled" for every compiled path, or None for all of them.
    """
    configs: list[BenchConfig] = []
    for device in devices:
        for dtype in dtypes:
            for n in sorted(sizes):
                for name, adapter in adapters.items():
                    chosen = [i for i in adapter.implementations if i.impl in impls] if impls is not None else [
                        next(i for i in adapter.implementations if i.input_form == "logits")]
                    for impl in chosen:
                        for mode in adapter.modes:
                            wanted = (modes is None or mode in modes
                                      or ("compiled" in modes and mode != "eager"))
                            if wanted:
                                configs.extend(BenchConfig(name, impl.impl, impl.input_form, mode, direction,
                                                           device, dtype, n) for direction in directions)
    return configs


class Shard(NamedTuple):
    """Part `number` (1-based) of `total`: a deterministic split of the matrix, so that CI jobs or machines share
    the work and `merge` puts the parts back together."""

    number: int
    total: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        parts = text.split("/")
        try:
            number, total = (int(part) for part in parts)
        except ValueError:
            raise ValueError(f"--shard {text!r}: write it as i/n, e.g. 2/4") from None
        if not 1 <= number <= total:
            raise ValueError(f"--shard {text!r}: i must be between 1 and n (1/{total} … {total}/{total})")
        return cls(number, total)

    def __str__(self) -> str:
        return f"{self.number}/{self.total}"


def shard_cases(cases: Sequence[Case], shard: Shard | None) -> list[Case]:
    """The cases of one shard. A case stays whole (its compiled paths are compared with its eager results in the
    same run); cases are dealt largest first, round robin, so the shards' work is even."""
    if shard is None:
        return list(cases)
    ranked = sorted(range(len(cases)), key=lambda i: (-cases[i].size, cases[i].name))
    chosen = {index for rank, index in enumerate(ranked) if rank % shard.total == shard.number - 1}
    return [case for i, case in enumerate(cases) if i in chosen]


def shard_bench(configs: Sequence[BenchConfig], shard: Shard | None) -> list[BenchConfig]:
    """The configurations of one shard: whole (device, dtype, size) groups, since ratios to the fastest are
    taken within a group, dealt round robin."""
    if shard is None:
        return list(configs)
    groups = list(dict.fromkeys((c.device, c.dtype, c.n) for c in configs))
    chosen = {group for rank, group in enumerate(groups) if rank % shard.total == shard.number - 1}
    return [c for c in configs if (c.device, c.dtype, c.n) in chosen]
