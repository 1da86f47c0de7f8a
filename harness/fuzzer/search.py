"""The search: Hypothesis draws batches (`draw.batches`), every chosen implementation computes each one in the
workers, and `target()` steers the next draws towards larger errors, per quantity and for non-finite results.

Nothing raises inside the test, so Hypothesis never stops at the first failure and never shrinks: every distinct
failure (a finding signature in one implementation) is kept with the first batch that showed it, and
`shrink.py` shrinks each. With a seed and no time budget the search is deterministic for one checkout run the
same way: `hypothesis.seed`, no example database, no deadline or health check that depends on the machine's
speed (Hypothesis also mixes in, 5 % of the time, constants of the code loaded into the process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings, target

from cases import Case
from harness.conformance.plan import Job
from harness.fuzzer.draw import Draw, batches
from harness.fuzzer.probe import Prober, Problem, problems, targets
from implementations import DERIVATIVES, REDUCTIONS

__all__ = ["Found", "Search", "SearchResult", "search", "searches"]


class _OutOfTime(BaseException):
    """The budget is spent: it leaves Hypothesis at once (a BaseException is not a test failure to shrink)."""


@dataclass
class Found:
    """One distinct failure: a finding signature in one implementation, the first batch that showed it and how
    many batches showed it."""

    problem: Problem
    case: Case
    seen: int = 1


@dataclass(frozen=True, slots=True)
class Search:
    """What one search draws and runs: a dtype and input form, the implementations of that form, their modes."""

    dtype: str
    input_form: str
    impls: tuple[str, ...]
    modes: dict[str, tuple[str, ...]]  # impl → the modes it runs in
    quantities: tuple[str, ...]
    size: int = 64
    finite: bool = False
    device: str = "cpu"

    @property
    def derivatives(self) -> tuple[str, ...]:
        """The further derivatives among the quantities (computed with the eager calls)."""
        return tuple(q for q in self.quantities if q in DERIVATIVES)


@dataclass
class SearchResult:
    found: dict[tuple[str, str], Found] = field(default_factory=dict)  # (finding id, impl) → the failure
    examples: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    best: dict[str, float] = field(default_factory=dict)  # label → the largest target value reached


def _jobs(plan: Search) -> list[Job]:
    """Each implementation's jobs on the drawn batch: eager for every reduction (with the further derivatives),
    and each compiled mode for every reduction (the batch's one shape: each compiles once)."""
    return [Job(0, plan.dtype, impl, plan.device, REDUCTIONS, mode=mode,
                derivatives=plan.derivatives if mode == "eager" else ())
            for impl in plan.impls for mode in plan.modes[impl]]


def search(prober: Prober, plan: Search, max_examples: int, seed_value: int, deadline: float | None,
           progress: Callable[[int, int, str], None] | None = None) -> SearchResult:
    """Run one search of `max_examples` batches (fewer if the monotonic `deadline` passes)."""
    result = SearchResult()
    began = time.perf_counter()
    jobs = _jobs(plan)

    @seed(seed_value)
    @settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate, Phase.target],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False)
    @given(batches(plan.dtype, plan.input_form, plan.size, plan.finite))
    def probe(drawn: Draw) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime
        result.examples += 1
        tags = ("derivative",) if plan.derivatives else ()
        case = drawn.case(f"fuzz-{plan.dtype}-{plan.input_form}-{result.examples}", tags)
        rows = prober.run([case], jobs)
        for label, value in sorted(targets(rows, plan.quantities).items()):
            target(value, label=label)
            result.best[label] = max(result.best.get(label, value), value)
        shown = problems(rows, [case], plan.quantities)
        for problem in shown:  # the first row of each failure is the one it is shrunk from
            result.found.setdefault((problem.finding_id, problem.config.impl), Found(problem, case, seen=0))
        for key in {(problem.finding_id, problem.config.impl) for problem in shown}:
            result.found[key].seen += 1  # batches that showed it
        if progress is not None:
            progress(result.examples, max_examples, f"{plan.dtype} {plan.input_form}: {len(result.found)} found")

    try:
        probe()
    except _OutOfTime:
        result.stopped_early = True
    result.seconds = time.perf_counter() - began
    return result


def searches(impls: Sequence[str], forms: dict[str, str], modes: dict[str, tuple[str, ...]], dtypes: Sequence[str],
             quantities: tuple[str, ...], size: int = 64, finite: bool = False, device: str = "cpu") -> list[Search]:
    """One search per dtype and input form that some chosen implementation takes."""
    out = []
    for dtype in dtypes:
        for form in ("logits", "probs"):
            chosen = tuple(impl for impl in impls if forms[impl] == form)
            if chosen:
                out.append(Search(dtype, form, chosen, {impl: modes[impl] for impl in chosen}, quantities, size,
                                  finite, device))
    return out
