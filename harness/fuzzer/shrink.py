"""Shrinking a failure to its minimal input, and finding where its behaviour starts.

A failure is a finding signature in one implementation (`probe.Problem`). Shrinking keeps that signature and
simplifies, one step at a time, keeping each step that still shows it:

1. the batch to one element (the failing one; where the failure needs company, such as a reduction's, halves
   of the batch while one still shows it);
2. the configuration: eager instead of a compiled path, `none` instead of a reduction, no weight, no pos_weight,
   a hard label instead of a soft one, the widest dtype that still fails;
3. the values: x (and a soft y) with the fewest significant digits that still fail.

The onset: between the minimal x and its nearest passing neighbour on the dtype's ordered line (the nearest of
x ± 2^k ulps that passes), a 32-way search narrows the pair to two adjacent numbers: the first that fails and the
last that passes ("from x = −16.635532 downward"). Each step's candidates go to the workers in one probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cases import DTYPES, Case, float_format, round_to_format
from harness.fuzzer.draw import from_ordinal, ordinal
from harness.fuzzer.probe import Config, Prober, Problem, jobs_of, problems
from harness.fuzzer.search import Found
from implementations import DERIVATIVES

__all__ = ["Minimal", "Onset", "shrink"]

_FANOUT = 32  # candidates per probe while narrowing an onset
_DIGITS = range(1, 7)  # significant digits tried for a simpler value
_ONSET_CHECKS = 16  # points between an onset and x that must fail too (at x − onset times 2^-k, k < 16)


@dataclass(frozen=True, slots=True)
class Onset:
    """Where a behaviour starts along x, everything else fixed: it shows at `first`, not at `last`, adjacent to it
    on the dtype's ordered line, and holds from `first` away from `last` (checked at points out to the minimal
    x), as far as `end` where it stops again on the other side (None: it holds out to ±max, as far as tried).
    Where it has two ends, `first` is the one nearer 0; where it has one, that one, whichever side of x it is
    on. `what` names the behaviour ("the float32 loss is 0.0")."""

    dtype: str
    first: float
    last: float
    what: str
    end: float | None = None

    @property
    def direction(self) -> str:
        return "downward" if self.first < self.last else "upward"

    def text(self) -> str:
        kind = float_format(self.dtype).numpy_dtype.type  # str: the shortest digits that name the number
        first, last = str(kind(self.first)), str(kind(self.last))
        end = "" if self.end is None else f" {self.direction.replace('ward', '')} to x = {kind(self.end)!s}"
        return f"from x = {first} {self.direction} {self.what}{end} (not at x = {last})"


@dataclass
class Minimal:
    """A failure shrunk: its problem as the minimal case shows it, the case, the onset, and the way there."""

    problem: Problem
    case: Case
    found: Found
    onset: Onset | None = None
    steps: list[str] = field(default_factory=list)
    no_onset: str = ""  # why there is no onset


def _derivatives(config: Config) -> tuple[str, ...]:
    return (config.quantity,) if config.quantity in DERIVATIVES else ()


def behaviour(problem: Problem) -> tuple[str, ...]:
    """What an element's failure does, wherever it lies: its kind, quantity family and failure mode, and the
    class of the value it gives (0, ±inf, NaN or another number): "the loss is 0.0" is one behaviour, "the loss
    has lost its digits" another, though both are "lost"."""
    kind, family, _, failure = problem.key
    got = float(problem.example.get("got", math.nan))
    value = "NaN" if math.isnan(got) else str(got) if got == 0 or math.isinf(got) else "a number"
    return kind, family, failure, value.replace("-0.0", "0.0")


_LOST = "lost"  # a candidate whose probe crashed, timed out or could not be judged: it says nothing


def _showing(prober: Prober, cases: Sequence[Case], config: Config, key: tuple[str, ...],
             like: tuple[str, ...] | None = None) -> list[Problem | str | None]:
    """Per case: the problem with signature `key` that `config` shows on it, None where it does not, `_LOST` where
    its probe was lost. `like`: a `behaviour` to look for instead, wherever the element lies (the onset's test: a
    region's edge is not a behaviour's)."""
    named = [replace(case, name=f"probe-{i}") for i, case in enumerate(cases)]
    jobs = [job for index in range(len(named)) for job in jobs_of(index, config, _derivatives(config))]
    rows = prober.run(named, jobs, use_cache=False)
    lost = {row.case for row in rows if row.status in ("crashed", "timeout") or row.error_type == "HarnessError"}
    shown: dict[str, Problem] = {}
    for problem in problems(rows, named, (config.quantity,)):
        same = problem.key == key if like is None else behaviour(problem) == like
        if same and problem.config == config:
            shown.setdefault(problem.example["case"], problem)
    return [shown.get(case.name) or (_LOST if case.name in lost else None) for case in named]


def _input_region(problem: Problem) -> str:
    """The input's part of a signature's region ("x ≪ 0" of "x ≪ 0, soft y"; a region named by a label outside
    the domain alone is all of it)."""
    return problem.key[2].split(", ")[0]


def _element(case: Case, index: tuple[int, ...]) -> Case:
    """The case's element at `index` alone, a one-element batch (weights broadcast to x and taken there)."""
    def at(values: np.ndarray | None) -> Any:
        return None if values is None else np.broadcast_to(values, case.x.shape)[index].reshape(1)

    return replace(case, x=at(case.x), y=at(case.y), weight=at(case.weight), pos_weight=at(case.pos_weight))


def _halves(case: Case) -> list[Case]:
    n = case.x.size
    if n < 2 or case.x.shape != case.y.shape:
        return []
    parts = (slice(0, n // 2), slice(n // 2, n))

    def cut(values: np.ndarray | None, part: slice) -> Any:
        return None if values is None else np.broadcast_to(values, case.x.shape).ravel()[part]

    return [replace(case, x=cut(case.x, p), y=cut(case.y, p), weight=cut(case.weight, p),
                    pos_weight=cut(case.pos_weight, p)) for p in parts]


@dataclass
class _Shrinking:
    prober: Prober
    key: tuple[str, ...]
    case: Case
    config: Config
    problem: Problem
    dtypes: Sequence[str]
    steps: list[str] = field(default_factory=list)

    def first_showing(self, candidates: Sequence[tuple[Case, Config, str]], label: bool = False) -> bool:
        """Take the first candidate (case, config, step) that still shows the failure; per config, one probe.
        `label`: a step that changes the label may change the signature's region with it (a tiny soft label
        to 0), as long as the behaviour and the input's own region stay: the failure is then that finding's."""
        like = (behaviour(self.problem), _input_region(self.problem)) if label else None
        for config in dict.fromkeys(c for _, c, _ in candidates):
            mine = [(case, step) for case, c, step in candidates if c == config]
            shown = _showing(self.prober, [case for case, _ in mine], config, self.key,
                             like[0] if like is not None else None)
            for (case, step), problem in zip(mine, shown, strict=True):
                if isinstance(problem, Problem) and (like is None or _input_region(problem) == like[1]):
                    self.case, self.config, self.problem, self.key = case, config, problem, problem.key
                    self.steps.append(step)
                    return True
        return False

    def to_one_element(self) -> None:
        index = self.problem.example.get("index")
        if self.case.x.size > 1 and index is not None and len(index) == self.case.x.ndim \
                and self.first_showing([(_element(self.case, tuple(index)), self.config, "one element")]):
            return
        while self.first_showing([(half, self.config, f"{half.x.size} elements") for half in _halves(self.case)]):
            pass

    def simpler_configuration(self) -> None:
        c = self.config
        if c.mode != "eager":
            self.first_showing([(self.case, replace(c, mode="eager"), "eager")])
        if self.config.reduction != "none":
            self.first_showing([(self.case, replace(self.config, reduction="none"), "none")])
        for name in ("weight", "pos_weight"):
            if getattr(self.case, name) is not None:
                dropped: dict[str, Any] = {name: None}
                self.first_showing([(replace(self.case, **dropped), self.config, f"no {name}")])
        y = self.case.y
        if y.size == 1 and float(y.ravel()[0]) not in (0.0, 1.0) and 0 <= float(y.ravel()[0]) <= 1:
            labels = sorted((0.0, 1.0), key=lambda hard: abs(hard - float(y.ravel()[0])))
            self.first_showing([(replace(self.case, y=np.full(y.shape, hard)), self.config, f"y = {hard:g}")
                                for hard in labels], label=True)
        wider = [d for d in self.dtypes if float_format(d).precision > float_format(self.config.dtype).precision]
        for dtype in sorted(wider, key=lambda d: -float_format(d).precision):
            if self.first_showing([(replace(self.case, dtypes=(dtype,)), replace(self.config, dtype=dtype), dtype)]):
                break

    def simpler_values(self) -> None:
        if self.case.x.size != 1:
            return
        for name in ("x", "y"):
            value = float(getattr(self.case, name).ravel()[0])
            if not math.isfinite(value) or (name == "y" and value in (0.0, 1.0)):
                continue
            fmt = float_format(self.config.dtype)
            shorter = dict.fromkeys(float(round_to_format(float(f"{value:.{k}g}"), fmt)) for k in _DIGITS)
            shorter.pop(value, None)
            self.first_showing([(replace(self.case, **_changed(name, v)), self.config, f"{name} = {v:g}")
                                for v in shorter])


def _changed(name: str, value: float) -> dict[str, Any]:
    return {name: np.full((1,), value)}


def _with_x(case: Case, value: float) -> Case:
    return replace(case, x=np.full(case.x.shape, value))


class _ProbeLost(Exception):
    """A probe of the onset search was lost: what it would have said is unknown, so there is no onset."""


def _failing(prober: Prober, case: Case, config: Config, like: tuple[str, ...], places: Sequence[int]) -> list[bool]:
    """Per ordinal of x: whether the behaviour `like` shows there (`_ProbeLost` where a probe says nothing)."""
    fmt = float_format(config.dtype)
    shown = _showing(prober, [_with_x(case, from_ordinal(p, fmt)) for p in places], config, (), like)
    if _LOST in shown:
        raise _ProbeLost
    return [problem is not None for problem in shown]


def _onset(prober: Prober, case: Case, config: Config, like: tuple[str, ...]) -> tuple[Onset | None, str]:
    """Where the failure starts along x (see the module docstring), or why there is no onset: x is not finite,
    no neighbour within reach passes, or the failure comes and goes between its onset and x (scattered
    roundings, not a region: `_ONSET_CHECKS` points in between must all fail)."""
    x = float(case.x.ravel()[0]) if case.x.size else math.nan
    if case.x.size != 1 or not math.isfinite(x):
        return None, "none: x is not finite" if case.x.size == 1 else "none: the failure needs a batch"
    if x == 0 and math.copysign(1.0, x) < 0:  # -0.0 and +0.0 share a place on the ordered line
        return None, "none: x is -0.0"
    try:
        return _onset_of(prober, case, config, like, x)
    except _ProbeLost:
        return None, "none: a probe of its neighbours was lost (its worker crashed or timed out)"


def _onset_of(prober: Prober, case: Case, config: Config, like: tuple[str, ...], x: float) -> tuple[Onset | None, str]:
    fmt = float_format(config.dtype)
    here, top = ordinal(x, fmt), ordinal(fmt.max_finite, fmt)
    bits = 8 * fmt.numpy_dtype.itemsize
    near = sorted({min(top, max(-top, here + sign * 2**k)) for k in range(bits) for sign in (1, -1)} - {here})
    passing = [p for p, fails in zip(near, _failing(prober, case, config, like, near), strict=True) if not fails]
    if not passing:
        return None, "none: it fails at every x tried, out to ±max"
    ends = [_narrowed(prober, case, config, like, min(side, key=lambda p: abs(p - here)), here)
            for side in ([p for p in passing if p > here], [p for p in passing if p < here]) if side]
    ends.sort(key=lambda pair: abs(from_ordinal(pair[1], fmt)))  # the end nearer 0 first
    (good, bad), far = ends[0], (ends[1][1] if len(ends) > 1 else here)
    between = sorted({bad + round((here - bad) * 2.0**-k) for k in range(_ONSET_CHECKS)}
                     | {far + round((here - far) * 2.0**-k) for k in range(_ONSET_CHECKS)} | {here})
    if not all(_failing(prober, case, config, like, between)):
        return None, "none: scattered (it passes again between where it starts and x)"
    end = from_ordinal(ends[1][1], fmt) if len(ends) > 1 else None
    return Onset(config.dtype, from_ordinal(bad, fmt), from_ordinal(good, fmt), _words(config, like), end), ""


def _narrowed(prober: Prober, case: Case, config: Config, like: tuple[str, ...], good: int,
              bad: int) -> tuple[int, int]:
    """A passing and a failing ordinal narrowed to adjacent ones, _FANOUT points a probe."""
    while abs(bad - good) > 1:
        step = (bad - good) / (_FANOUT + 1)
        inside = [p for p in dict.fromkeys(good + round(step * i) for i in range(1, _FANOUT + 1))
                  if p not in (good, bad)]
        line = [(good, False), *zip(inside, _failing(prober, case, config, like, inside), strict=True), (bad, True)]
        j = next(i for i, (_, fails) in enumerate(line) if fails)
        good, bad = line[j - 1][0], line[j][0]
    return good, bad


def _words(config: Config, like: tuple[str, ...]) -> str:
    """The behaviour in words: "the float32 loss is 0.0", "the float16 gradient fails (imprecise)"."""
    quantity = {"loss": "loss", "grad": "gradient"}.get(config.quantity, config.quantity)
    _, _, failure, value = like
    does = f"is {value}" if value != "a number" else f"fails ({failure})"
    return f"the {config.dtype} {quantity} {does}"


def shrink(prober: Prober, found: Found, dtypes: Sequence[str] = tuple(DTYPES)) -> Minimal:
    """Shrink one failure (see the module docstring); `dtypes`: those it may widen to."""
    problem = found.problem
    work = _Shrinking(prober, problem.key, found.case, problem.config, problem, dtypes)
    work.to_one_element()
    work.simpler_configuration()
    work.simpler_values()
    onset, why = (_onset(prober, work.case, work.config, behaviour(work.problem))
                  if work.problem.key[0] in ("precision", "nonfinite")
                  else (None, f"none: a {work.problem.key[0]} finding has no element to move"))
    return Minimal(work.problem, work.case, found, onset, work.steps, why)
