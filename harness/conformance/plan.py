"""The matrix of an audit: which implementation runs which case, in which dtype, device, reduction and mode.

Capabilities come from the adapter classes (dtypes, implementations, modes); what to run of the expensive parts
(compiled paths, batch consistency, large reductions) comes from the cases' tags and the `Scope`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cases import Case
from cases.relations import partner_of
from harness.store.schema import Shard
from implementations import DERIVATIVES, REDUCTIONS, Adapter, Implementation

__all__ = ["BATCH_SIZE", "DERIVATIVE_REDUCTIONS", "Cell", "Job", "Scope", "batch_eligible", "derivative_quantities",
           "jobs_for", "runs", "shard_cases"]

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
    derivatives: tuple[str, ...] = ()  # further derivatives (DERIVATIVES) to compute with each reduction

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
        """A context or fuzz case made for certain dtypes (mixed dtypes, the dtype a failure was found in) compiles
        in those; every other in path_dtypes."""
        own = case.dtypes is not None and ("context" in case.tags or "fuzz" in case.tags)
        return (dtype in self.path_dtypes or own) and (self.full or "path" in case.tags)

    def reductions(self, case: Case) -> tuple[str, ...]:
        """The reductions a compiled path runs: path_reductions, and every one for a fuzz case (it replays a
        failure in the reduction the fuzzer found it in)."""
        return REDUCTIONS if "fuzz" in case.tags else self.path_reductions


def batch_eligible(case: Case) -> bool:
    """The batch check needs elements that stand alone: x and y of one shape, no weights."""
    return ("batch" in case.tags and case.weight is None and case.pos_weight is None
            and case.x.shape == case.y.shape and case.x.size > 0)


# The further derivatives of `none` are those of the sum (and equal `sum`'s), so they run for `none` and `mean`.
DERIVATIVE_REDUCTIONS = ("none", "mean")


def derivative_quantities(impl: Implementation, case: Case, mode: str = "eager", check: str = "reference",
                          reduction: str = "none") -> tuple[str, ...]:
    """The further derivatives judged for a cell: on the cases tagged "derivative", eager, against the reference,
    for `none` and `mean`, for the frameworks' own APIs (not the formulas the harness writes with their
    operations, nor the APIs here for a relation or a context); grad_weight and grad_pos_weight where the case
    has them."""
    if "derivative" not in case.tags or mode != "eager" or check != "reference" or impl.runs_on is not None \
            or impl.formula or not impl.differentiable or reduction not in DERIVATIVE_REDUCTIONS:
        return ()
    absent = {"grad_weight": case.weight is None, "grad_pos_weight": case.pos_weight is None}
    return tuple(name for name in DERIVATIVES if not absent.get(name, False))


def runs(impl: Implementation, case: Case, full: bool = False) -> bool:
    """Whether an implementation runs a case: the same input form, and the tag it is limited to (if any); one
    limited to the `path` cases for its cost (an export per shape) runs every case in a full audit."""
    limited = impl.runs_on is not None and impl.runs_on not in case.tags and not (full and impl.runs_on == "path")
    return case.input_form == impl.input_form and not limited


def jobs_for(adapter: type[Adapter], cases: Sequence[Case], dtypes: Sequence[str], devices: Sequence[str],
             scope: Scope) -> Iterator[Job]:
    """Every job of one adapter, eager first (the compiled paths are compared with the eager results)."""

    def cells() -> Iterator[tuple[Implementation, int, Case, str, str]]:
        for impl in adapter.implementations:
            for index, case in enumerate(cases):
                if runs(impl, case, scope.full) and scope.includes(case):
                    for dtype in (d for d in dtypes if case.runs_in(d)):
                        for device in devices:
                            yield impl, index, case, dtype, device

    for implementation, index, case, dtype, device in cells():
        impl = implementation.impl
        if implementation.sigmoid_inside:  # there for its compiled paths: eager only where they are compared
            if scope.compiles(case, dtype):
                yield Job(index, dtype, impl, device, scope.reductions(case))
            continue
        reductions = tuple(str(r) for r in REDUCTIONS if r in implementation.reductions)
        yield Job(index, dtype, impl, device, reductions, derivatives=derivative_quantities(implementation, case))
        if implementation.batch and batch_eligible(case):
            yield Job(index, dtype, impl, device, ("none",), check="batch")
    for mode in (m for m in adapter.modes if m != "eager"):
        for implementation, index, case, dtype, device in cells():
            if scope.compiles(case, dtype):
                reductions = tuple(r for r in scope.reductions(case) if r in implementation.reductions)
                if reductions:
                    yield Job(index, dtype, implementation.impl, device, reductions, mode=mode)


def shard_cases(cases: Sequence[Case], shard: Shard | None) -> list[Case]:
    """The cases of one shard. A case stays whole (its compiled paths are compared with its eager results in the
    same run), and so does a base case with its partners (their identities compare them); units are dealt
    largest first, round robin, so the shards' work is even."""
    if shard is None:
        return list(cases)
    units: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        found = partner_of(case)
        units.setdefault(found[1] if found else case.name, []).append(index)
    ranked = sorted(units.items(), key=lambda item: (-sum(cases[i].size for i in item[1]), item[0]))
    chosen = {index for rank, (_, members) in enumerate(ranked) if rank % shard.total == shard.number - 1
              for index in members}
    return [case for i, case in enumerate(cases) if i in chosen]
