"""Extreme and edge inputs derived from each dtype's own properties: thresholds, probability edges, odd labels.

A threshold is the real x where a quantity the frameworks compute in the dtype under test changes class once
rounded to that dtype: exp(x) becomes +inf, subnormal or 0; σ(x) becomes 1 or 0; the loss softplus(x) (y = 0)
becomes subnormal or 0. Each is computed exactly (mpmath), then located on the dtype's grid by checking the
rounded quantity at representable x, so the case holds the two representable neighbours that straddle it.
Nothing is hard-coded for one dtype: everything follows from `FloatFormat` (precision, emin, largest finite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np

from cases.dtypes import DTYPES, FloatFormat
from cases.model import Case, InputForm

__all__ = [
    "LABEL_VALUES",
    "REPORTED_LOGITS",
    "grid",
    "labels",
    "logit_threshold_neighbours",
    "logit_thresholds",
    "logit_thresholds_for",
    "prob_edges",
    "prob_edges_for",
    "round_exact",
]

INF = np.inf
NAN = np.nan
Y_EDGES = (0.0, 1.0, 0.5)  # every edge value meets a hard label of each kind and the symmetric soft one
_PREC = 320  # bits: far beyond float64's 53, so no computed quantity lands within reach of a rounding tie
_MAX_STEPS = 64  # grid steps from the analytic estimate before giving up (each threshold needs 0 or 1)
# Logits where an upstream report found a BCE gradient of 0.0 in float64: x = ±40 (pytorch#195529) and
# x = ±54·log 2 (pytorch#195677), both past σ(x) = 1 in float64, where 1 − σ(x) must come from σ(−x), not 1 − σ(x).
REPORTED_LOGITS = (-40.0, 40.0, -37.42994775023705, 37.42994775023705)
# Tags per input form: compiled paths run on one small case of each form (the float32 one).
_PATH_DTYPE = "float32"


def grid(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pairing of the given inputs and labels, flattened (inputs vary slowest)."""
    gx, gy = np.meshgrid(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), indexing="ij")
    return gx.ravel(), gy.ravel()


# ----------------------------------------------------------------------------------------- the dtype's grid


def round_exact(value: mpmath.mpf, fmt: FloatFormat) -> float:
    """Round an mpmath value once (to nearest, ties to even) onto `fmt`'s grid, subnormals and overflow included.

    Every format here is a subset of float64, so the result is returned as an exact float64.
    """
    if mpmath.isnan(value):
        return NAN
    if mpmath.isinf(value):
        return float(value)
    magnitude = abs(value)
    if magnitude == 0:
        return 0.0
    _, exponent = mpmath.frexp(magnitude)  # magnitude = m · 2**exponent, m in [0.5, 1)
    quantum = mpmath.ldexp(1, max(int(exponent) - 1, fmt.emin) - fmt.precision + 1)
    rounded = mpmath.nint(magnitude / quantum) * quantum  # nint ties to even; the division by 2^k is exact
    result = INF if rounded > fmt.max_finite else float(rounded)
    return result if value > 0 else -result


def _next_up(value: float, fmt: FloatFormat) -> float:
    """The next representable number of `fmt` above a representable `value`."""
    if value < 0:
        return -_next_down(-value, fmt)
    return float(value + fmt.ulp(value))


def _next_down(value: float, fmt: FloatFormat) -> float:
    """The next representable number of `fmt` below a representable `value`."""
    if value <= 0:
        return -_next_up(-value, fmt)
    # the spacing just below value: smaller than at value when value is a power of two (a binade's start)
    return float(value - fmt.ulp(np.nextafter(value, 0.0)))


@dataclass(frozen=True, slots=True)
class _Threshold:
    """Where `quantity(x)`, rounded to the dtype, enters the class `beyond` (for x above, or below, `estimate`)."""

    estimate: mpmath.mpf
    quantity: Callable[[mpmath.mpf], mpmath.mpf]
    beyond: Callable[[float], bool]
    upward: bool  # True: beyond for every x above the crossing; False: for every x below it


def _thresholds(fmt: FloatFormat) -> dict[str, _Threshold]:
    """The crossings, each as its exact real value and the test that locates it on the grid.

    Rounding boundaries: a value rounds to +inf from max + ½ulp(max) on (ties go to the even infinity), to 0 up
    to ½·smallest subnormal (ties to even: 0), to a subnormal below smallest normal − ½·smallest subnormal, to 1
    from 1 − 2**-(p+1) on (1 is even, 1 − 2**-p odd).
    """
    mp = mpmath.mpf
    top = mp(fmt.max_finite) + mp(float(fmt.ulp(fmt.max_finite))) / 2
    half_subnormal = mp(fmt.smallest_subnormal) / 2
    below_normal = mp(fmt.smallest_normal) - half_subnormal
    one_boundary = 1 - mpmath.ldexp(1, -(fmt.precision + 1))
    normal = fmt.smallest_normal

    def is_subnormal_or_zero(v: float) -> bool:
        return abs(v) < normal

    return {
        "exp_overflow": _Threshold(mpmath.log(top), mpmath.exp, lambda v: v == INF, True),
        "exp_subnormal": _Threshold(mpmath.log(below_normal), mpmath.exp, is_subnormal_or_zero, False),
        "exp_underflow": _Threshold(mpmath.log(half_subnormal), mpmath.exp, lambda v: v == 0.0, False),
        # σ(x) ≥ 1 − 2^-(p+1)  ⟺  e^x ≥ 2^(p+1) − 1
        "sigmoid_one": _Threshold(mpmath.log(1 / (1 - one_boundary) - 1), _sigmoid, lambda v: v == 1.0, True),
        # σ(x) ≤ ½·smallest subnormal  ⟺  e^-x ≥ 2/s − 1
        "sigmoid_zero": _Threshold(-mpmath.log(1 / half_subnormal - 1), _sigmoid, lambda v: v == 0.0, False),
        # softplus(x) = log1p(e^x) = c  ⟺  x = log(expm1(c))
        "softplus_subnormal": _Threshold(mpmath.log(mpmath.expm1(below_normal)), _softplus, is_subnormal_or_zero,
                                         False),
        "softplus_zero": _Threshold(mpmath.log(mpmath.expm1(half_subnormal)), _softplus, lambda v: v == 0.0, False),
    }


def _sigmoid(x: mpmath.mpf) -> mpmath.mpf:
    return 1 / (1 + mpmath.exp(-x))


def _softplus(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.log1p(mpmath.exp(x))


def _straddle(threshold: _Threshold, fmt: FloatFormat) -> tuple[float, float]:
    """The adjacent representable pair (below, above) between which the rounded quantity changes class.

    Starts at the estimate rounded to the grid and walks (in practice 0 or 1 steps) until the class flips,
    so the answer rests on the rounded quantity itself, not on the algebra behind the estimate.
    """

    def beyond(x: float) -> bool:
        return threshold.beyond(round_exact(threshold.quantity(mpmath.mpf(x)), fmt))

    # `first` ends as the beyond-region's representable x nearest the crossing; `outward` leaves the region.
    outward, inward = (_next_down, _next_up) if threshold.upward else (_next_up, _next_down)
    first = round_exact(threshold.estimate, fmt)
    for _ in range(_MAX_STEPS):
        if beyond(first) and not beyond(outward(first, fmt)):
            other = outward(first, fmt)
            return (other, first) if threshold.upward else (first, other)
        first = outward(first, fmt) if beyond(first) else inward(first, fmt)
    raise RuntimeError(f"{fmt.name}: no crossing within {_MAX_STEPS} steps of {threshold.estimate}")


@functools.cache
def _located(fmt: FloatFormat) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    with mpmath.workprec(_PREC):
        found = _thresholds(fmt)
        exact = {name: float(t.estimate) for name, t in found.items()}
        neighbours = {name: _straddle(t, fmt) for name, t in found.items()}
    return exact, neighbours


def logit_thresholds_for(fmt: FloatFormat) -> dict[str, float]:
    """Threshold name → the real x (nearest float64) where the rounded quantity changes class in `fmt`.

    `exp_overflow` = log(max + ½ulp(max)) (≈ log max), `exp_subnormal` = log(smallest normal − ½·smallest
    subnormal) (≈ log smallest normal), `exp_underflow` = log(½·smallest subnormal), `sigmoid_one` =
    log(2**(p+1) − 1), `sigmoid_zero` = −log(2/smallest subnormal − 1), `softplus_subnormal` and `softplus_zero`
    = log(expm1(c)) for the same two boundaries c as exp. Upward crossings (exp_overflow, sigmoid_one) hold for
    x above; the others for x below.
    """
    return dict(_located(fmt)[0])


def logit_threshold_neighbours(fmt: FloatFormat) -> dict[str, tuple[float, float]]:
    """Threshold name → (below, above): adjacent representable numbers of `fmt` that straddle the threshold."""
    return dict(_located(fmt)[1])


def _specials(fmt: FloatFormat) -> list[float]:
    """±largest finite, ±smallest normal, ±smallest subnormal, ±inf."""
    magnitudes = (fmt.max_finite, fmt.smallest_normal, fmt.smallest_subnormal, INF)
    return [sign * m for m in magnitudes for sign in (1.0, -1.0)]


def _logit_values(fmt: FloatFormat) -> np.ndarray:
    """The threshold case's logits: each threshold's neighbours and their negations, then the specials, sorted.

    The negations make every threshold meet y = 1 too, whose loss is softplus(−x).
    """
    straddling = [v for pair in logit_threshold_neighbours(fmt).values() for v in pair]
    values = set(straddling) | {-v for v in straddling} | set(_specials(fmt))
    return np.array(sorted(values), dtype=np.float64)


def logit_thresholds(_: int) -> list[Case]:
    """Per dtype, logits straddling that dtype's exp/σ/softplus thresholds and its specials; y in {0, 1, ½}."""
    out: list[Case] = []
    for name, fmt in DTYPES.items():
        x, y = grid(_logit_values(fmt), Y_EDGES)
        crossings = ", ".join(f"{k} {v:.9g}" for k, v in logit_thresholds_for(fmt).items())
        out.append(Case(
            f"logit_thresholds_{name}", "logit_thresholds", "logits", x, y,
            description=f"{name} neighbours (and negations) of {crossings}; ±max, ±normal min, ±subnormal min, ±inf",
            tags=("extreme", "batch", *(("path",) if name == _PATH_DTYPE else ())),
            dtypes=(name,),
        ))
    x, y = grid(REPORTED_LOGITS, (0.0, 1.0))
    out.append(Case("logit_reported", "logit_thresholds", "logits", x, y,
                    description="x = ±40 and ±37.42994775023705 (≈ 54·log 2, where σ(x) rounds to 1 in float64) "
                                "against y = 0 and 1: torch's float64 gradient was reported 0.0 there "
                                "(pytorch#195529, #195677)",
                    tags=("extreme", "batch"), dtypes=("float64", "float32")))
    x, y = grid([NAN, -1.0, 0.0, 1.0], Y_EDGES)
    out.append(Case("logit_nan", "logit_thresholds", "logits", x, y,
                    description="a NaN logit among finite ones, y in {0, 1, 0.5} (outside the domain)",
                    tags=("invalid",)))
    return out


# ----------------------------------------------------------------------------------------- probabilities


def prob_edges_for(fmt: FloatFormat) -> tuple[list[float], list[float]]:
    """(inside, outside) [0, 1]: 0, smallest subnormal, smallest normal, ½, 1 − epsneg, 1; and −smallest
    subnormal, 1 + eps (the nearest representable numbers outside)."""
    epsneg = 2.0**-fmt.precision  # 1 − epsneg is the largest number below 1
    inside = [0.0, fmt.smallest_subnormal, fmt.smallest_normal, 0.5, 1.0 - epsneg, 1.0]
    outside = [-fmt.smallest_subnormal, 1.0 + fmt.eps]
    return inside, outside


def prob_edges(_: int) -> list[Case]:
    """Per dtype, probabilities at the edges of [0, 1] in that dtype, and just outside; y in {0, 1, ½}."""
    out: list[Case] = []
    for name, fmt in DTYPES.items():
        inside, outside = prob_edges_for(fmt)
        p, y = grid(inside, Y_EDGES)
        out.append(Case(
            f"prob_edges_{name}", "prob_edges", "probs", p, y,
            description=f"{name}: p = 0, min subnormal, min normal, 0.5, 1 - epsneg, 1 (log 0 = -inf, 0·log 0 = 0)",
            tags=("extreme", "batch", *(("path",) if name == _PATH_DTYPE else ())),
            dtypes=(name,),
        ))
        p, y = grid(outside, Y_EDGES)
        out.append(Case(
            f"prob_outside_{name}", "prob_edges", "probs", p, y,
            description=f"{name}: p = -min subnormal and 1 + eps, the nearest numbers outside [0, 1]"
                        " (outside the domain)",
            tags=("invalid",), dtypes=(name,),
        ))
    return out


# ----------------------------------------------------------------------------------------- labels

# name → label; tiny and 1 − tiny survive only in the wider dtypes (1e-30 is 0 in float16, 1 − 2**-40 is 1 in
# float32 and below), which is the point: the reference follows the rounded label.
LABEL_VALUES: dict[str, float] = {
    "zero": 0.0, "one": 1.0, "half": 0.5, "tiny": 1e-30, "one_minus_tiny": 1.0 - 2.0**-40, "soft": 0.3,
}
_LABELS_OUTSIDE = (-0.1, 1.1)
_LABEL_LOGITS = (-30.0, -2.0, 0.0, 2.0, 30.0)
_LABEL_PROBS = (0.0, 1e-6, 0.3, 0.5, 1.0 - 1e-6, 1.0)


def labels(_: int) -> list[Case]:
    """Hard, soft, tiny and near-1 labels, labels outside [0, 1] and NaN, against logits and probabilities."""
    valid = list(LABEL_VALUES.values())
    out: list[Case] = []
    forms: tuple[tuple[InputForm, tuple[float, ...]], ...] = (("logits", _LABEL_LOGITS), ("probs", _LABEL_PROBS))
    for form, inputs in forms:
        x, y = grid(inputs, valid)
        out.append(Case(f"labels_{form}", "labels", form, x, y,
                        description=f"y in {{0, 1, 0.5, 1e-30, 1 - 2^-40, 0.3}} against {form} {list(inputs)}",
                        tags=("labels",)))
        x, y = grid(inputs, _LABELS_OUTSIDE)
        # the compiled paths too: a decomposition may drop the check that makes eager reject these labels
        out.append(Case(f"labels_outside_{form}", "labels", form, x, y,
                        description=f"y = -0.1 and 1.1 against {form} {list(inputs)} (outside the domain)",
                        tags=("labels", "invalid", "path")))
        x, y = grid(inputs, [NAN])
        out.append(Case(f"labels_nan_{form}", "labels", form, x, y,
                        description=f"y = NaN against {form} {list(inputs)} (outside the domain)",
                        tags=("labels", "invalid")))
    return out
