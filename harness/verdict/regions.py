"""Where an element lies and how its result failed, in the words that name a finding.

The input region is the part of BCE's domain an element is in. For logits: saturated ("x ≫ 0", "x ≪ 0": e^−|x|
is below the dtype's epsilon, so 1 + e^−|x| rounds to 1 and σ(|x|) to within an epsilon of 1, where 1 − σ(x)
and log(1 + e^x) computed directly lose every digit), moderate, 0 or subnormal ("x ≈ 0"), ±inf or NaN. For
probabilities: p = 0, p = 1, subnormal, within one epsilon of 0 or 1, moderate. Then the label: 0, 1 or soft.
Inputs outside the domain (a label or probability outside [0, 1], a NaN) are named by that alone: what else
they are does not matter. Saturation follows each dtype's own threshold, (p − 1)·log 2 for p significand bits
(15.9 in float32, 36.0 in float64, 6.9 in float16, 4.9 in bfloat16), so one cause has one region in every
dtype. The failure mode is how the result is wrong: "NaN", "inf", "finite for inf", "wrong infinity", "not
NaN", "lost" (0.0, the wrong sign, or not one correct digit) or "imprecise" (some digits lost).

`ordinariness` orders regions for ranking findings: 0 for inputs of ordinary training (moderate and saturated
logits, logits of 0 or subnormal, confident probabilities, hard and soft labels), 1 for edges (probabilities of
exactly 0 or 1, or subnormal), 2 for what lies outside ordinary use (±inf, NaN, values outside [0, 1]).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from cases import float_format

__all__ = ["FAILURE_MODES", "failure_modes", "failures", "input_regions", "ordinariness", "saturation"]

FAILURE_MODES = ("NaN", "inf", "finite for inf", "wrong infinity", "not NaN", "lost", "imprecise")
_EXTREME = ("inf", "NaN", "outside")
_EDGE = ("p = 0,", "p = 1,", "p subnormal")


def saturation(dtype: str) -> float:
    """|x| from which e^−|x| is below the dtype's epsilon: −log(eps) = (p − 1)·log 2."""
    return -math.log(float_format(dtype).eps)


def _logit_classes(x: np.ndarray, dtype: str) -> np.ndarray:
    fmt = float_format(dtype)
    edge = saturation(dtype)
    with np.errstate(invalid="ignore"):
        return np.select(
            [np.isnan(x), x == np.inf, x == -np.inf, np.abs(x) < fmt.smallest_normal, x >= edge, x <= -edge],
            ["x NaN", "x = +inf", "x = -inf", "x ≈ 0", "x ≫ 0", "x ≪ 0"], "moderate x")


def _probability_classes(p: np.ndarray, dtype: str) -> np.ndarray:
    fmt = float_format(dtype)
    with np.errstate(invalid="ignore"):
        return np.select(
            [np.isnan(p), (p < 0) | (p > 1), p == 0, p == 1, p < fmt.smallest_normal, p < fmt.eps, 1 - p <= fmt.eps],
            ["p NaN", "p outside [0, 1]", "p = 0", "p = 1", "p subnormal", "p ≈ 0", "p ≈ 1"], "moderate p")


def _label_classes(y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.select([np.isnan(y), y == 0, y == 1, (y > 0) & (y < 1)],
                         ["y NaN", "y = 0", "y = 1", "soft y"], "y outside [0, 1]")


def input_regions(x: np.ndarray, y: np.ndarray, input_form: str, dtype: str) -> np.ndarray:
    """Per element, its region: "x ≫ 0, y = 1", "p = 0, soft y", … (x and y as float64, one shape)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    inputs = (_logit_classes(x, dtype) if input_form == "logits" else _probability_classes(x, dtype)).astype(str)
    labels = _label_classes(y).astype(str)
    both = np.char.add(np.char.add(inputs, ", "), labels)
    outside = np.char.find(labels, "outside") >= 0
    return np.where(outside | (labels == "y NaN"), labels,
                    np.where((np.char.find(inputs, "outside") >= 0) | (np.char.find(inputs, "NaN") >= 0), inputs,
                             both))


def ordinariness(region: str) -> int:
    """0 ordinary inputs, 1 edges, 2 outside ordinary use (see the module docstring)."""
    if any(word in region for word in _EXTREME):
        return 2
    return 1 if any(word in region + "," for word in _EDGE) else 0


def failure_modes(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per element, how `got` misses `expected` (the exact value rounded to the dtype)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        lost = (got == 0) | (expected == 0) | (np.abs(got - expected) >= 0.5 * np.abs(expected))  # sign included
        return np.select(
            [np.isnan(got) & ~np.isnan(expected), np.isinf(got) & np.isfinite(expected),
             np.isinf(expected) & np.isfinite(got), np.isinf(got) & np.isinf(expected) & (got != expected),
             np.isnan(expected) & ~np.isnan(got), lost],
            list(FAILURE_MODES[:6]), FAILURE_MODES[6])


def failures(failing: np.ndarray, got: np.ndarray, expected: np.ndarray, ulp_error: np.ndarray, x: np.ndarray,
             y: np.ndarray, input_form: str, dtype: str,
             regions_of: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """The failing elements of one result grouped by (region, failure mode), as the JSON a row stores: per group
    the count and its worst element (index, x, y, got, expected, ULP error); "" when nothing fails. The largest
    ULP error first within a group; groups in order of their worst error. `regions_of`: every element's
    `input_regions` where the caller has them already (the same for every result of one case and dtype), as
    the distinct regions and, per element, an index into them."""
    where = np.flatnonzero(np.ravel(failing))
    if where.size == 0:
        return ""
    flat = [np.ravel(a) for a in (got, expected, ulp_error, x, y)]
    if regions_of is None:
        regions = input_regions(flat[3][where], flat[4][where], input_form, dtype)
    else:
        labels, codes = regions_of
        regions = labels[np.ravel(codes)[where]]
    modes = failure_modes(flat[0][where], flat[1][where])
    ulps = np.nan_to_num(flat[2][where], nan=np.inf)
    order = np.argsort(-ulps, kind="stable")  # worst first: a group's first element is its worst
    keys = np.char.add(np.char.add(regions[order].astype(str), "|"), modes[order].astype(str))
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    groups = []
    for start, count in sorted(zip(first.tolist(), counts.tolist(), strict=True)):  # groups by their worst error
        k, i = int(order[start]), int(where[order[start]])
        groups.append({"region": str(regions[k]), "mode": str(modes[k]), "count": count,
                       "index": [int(v) for v in np.unravel_index(i, np.shape(got))],
                       **{name: _number(values[i]) for name, values in zip(("got", "expected", "ulp", "x", "y"),
                                                                            flat, strict=True)}})
    return json.dumps(groups, allow_nan=False)


def _number(value: Any) -> float | str:
    """A float for strict JSON: non-finite values as "nan", "inf", "-inf" (float() reads them back)."""
    number = float(value)
    return number if math.isfinite(number) else str(number)
