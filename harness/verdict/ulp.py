"""Judging one result against the reference: errors in ULPs, NaN/inf agreement, the worst element, a status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cases import FloatFormat, round_in_format
from harness.verdict.tolerance import BAND_FACTOR, ELEMENT_STATUSES, pass_ulp

__all__ = ["Judgement", "judge", "same_values"]

_PASS, _INEXACT, _DEVIATION, _FAIL, _NONFINITE = range(5)


@dataclass(frozen=True, slots=True)
class Judgement:
    status: str
    max_ulp_error: float
    max_abs_error: float
    max_rel_error: float
    n_bad: int
    worst_index: tuple[int, ...] | None
    got: float
    expected: float
    message: str = ""
    levels: np.ndarray | None = field(default=None, repr=False)  # per element: index into ELEMENT_STATUSES
    ulp_errors: np.ndarray | None = field(default=None, repr=False)  # per element, shaped like the result
    rounded: np.ndarray | None = field(default=None, repr=False)  # the exact values rounded to the dtype


def same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: the same value to the bit that carries meaning (zeros' signs included); any NaN equals any
    NaN, since a NaN's sign and payload carry no value. The batch check's rule, and its reproducer's."""
    return ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))


def _ulp_at_exact(hi: np.ndarray, lo: np.ndarray, fmt: FloatFormat, quantum: np.ndarray) -> np.ndarray:
    """The dtype's ULP at |hi + lo| (`quantum`: its ULP at |hi|): when hi is a power of two and lo points towards
    zero, the exact value lies in the binade below, whose ULP is half as large."""
    below = (lo != 0) & (np.sign(lo) != np.sign(hi)) & (np.frexp(hi)[0] == np.copysign(0.5, hi))
    if not below.any():
        return quantum
    return np.where(below, fmt.ulp(np.nextafter(hi, 0.0)), quantum)


def judge(
    got: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    band: np.ndarray,
    fmt: FloatFormat,
    reduced_over: int | None,
    explained: np.ndarray | None = None,
) -> Judgement:
    """Compare `got` (float64 holding the framework's values) with the exact value hi + lo.

    Args:
        got: the framework's result, converted exactly to float64.
        hi, lo: the exact value as a double-double, same shape as expected.
        band: the absolute condition band Σ|∂f/∂v|·½ulp(v) per element (multiplied by BAND_FACTOR here).
        fmt: the dtype under test.
        reduced_over: n for a reduced (scalar) loss, None for element-wise results.
        explained: elements a documented convention accounts for (they count as `deviation`, not worse).
    """
    got = np.asarray(got, dtype=np.float64)
    hi, lo, band = (np.asarray(a, dtype=np.float64) for a in (hi, lo, band))
    if got.shape != hi.shape:
        return Judgement("fail", math.inf, math.inf, math.inf, max(got.size, hi.size), None, math.nan, math.nan,
                         message=f"result has shape {got.shape}, but the inputs imply {hi.shape}")
    if got.size == 0:
        return Judgement("pass", 0.0, 0.0, 0.0, 0, None, math.nan, math.nan)
    g, h, lw, b = got.ravel(), hi.ravel(), lo.ravel(), band.ravel()
    quantum = fmt.ulp(h)
    rounded = round_in_format(h, fmt.precision, fmt.emin, fmt.max_finite, quantum)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_err = np.abs((g - h) - lw)
        ulp_err = abs_err / _ulp_at_exact(h, lw, fmt, quantum)
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(h))
    nan_got, nan_ref = np.isnan(g), np.isnan(h)
    both_nan = nan_got & nan_ref
    same_infinity = np.isinf(g) & (g == rounded)  # ±inf where the exact value rounds to that infinity
    exact_zero_error = both_nan | same_infinity
    # an exact value that rounds past the largest finite number counts as infinite, and vice versa
    nonfinite = (nan_got != nan_ref) | (np.isinf(g) & ~same_infinity & ~nan_ref) | (np.isinf(rounded) & ~np.isinf(g))
    for errors in (abs_err, ulp_err, rel_err):
        errors[exact_zero_error] = 0.0
        errors[nonfinite] = np.inf

    level = np.full(g.shape, _FAIL)
    level[ulp_err <= pass_ulp(reduced_over)] = _PASS
    level[(level == _FAIL) & (abs_err <= BAND_FACTOR * b)] = _INEXACT
    level[nonfinite] = _NONFINITE
    level[exact_zero_error] = _PASS
    if explained is not None:
        level[explained.ravel() & (level > _INEXACT)] = _DEVIATION

    # worst: highest status, then the largest ULP error (NaN above +inf, which nan_to_num makes the largest float)
    worst = 0
    if g.size > 1:
        worst = int(np.lexsort((np.nan_to_num(ulp_err, nan=np.inf), level))[-1])
    worst_index = None if reduced_over is not None else tuple(int(i) for i in np.unravel_index(worst, hi.shape))
    return Judgement(
        status=ELEMENT_STATUSES[int(level[worst])],
        max_ulp_error=float(np.max(ulp_err)),
        max_abs_error=float(np.max(abs_err)),
        max_rel_error=float(np.max(rel_err)),
        n_bad=int(np.count_nonzero(level != _PASS)),
        worst_index=worst_index,
        got=float(g[worst]),
        expected=float(rounded[worst]),
        levels=level.reshape(hi.shape),
        ulp_errors=ulp_err.reshape(hi.shape),
        rounded=rounded.reshape(hi.shape),
    )
