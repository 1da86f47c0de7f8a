"""Status classification: ULP errors, the condition band, NaN/inf agreement, the worst element."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cases import Case, float_format
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge

F32 = float_format("float32")
F64 = float_format("float64")


def _judge(got: list[float], exact: list[float], band: float = 0.0, fmt=F32, reduced_over: int | None = None):
    hi = np.array(exact)
    return judge(np.array(got), hi, np.zeros_like(hi), np.full_like(hi, band), fmt, reduced_over)


def test_exact_and_few_ulp_pass() -> None:
    one_ulp = 2.0**-23
    verdict = _judge([1.0, 1.0 + 3 * one_ulp], [1.0, 1.0])
    assert verdict.status == "pass"
    assert verdict.max_ulp_error == 3.0
    assert verdict.n_bad == 0


def test_beyond_tolerance_is_fail_and_names_the_worst_element() -> None:
    one_ulp = 2.0**-23
    verdict = _judge([1.0, 1.0 + 10 * one_ulp, 1.0 + 2 * one_ulp], [1.0, 1.0, 1.0])
    assert verdict.status == "fail"
    assert verdict.max_ulp_error == 10.0
    assert verdict.worst_index == (1,)
    assert verdict.got == 1.0 + 10 * one_ulp and verdict.expected == 1.0


def test_within_condition_band_is_inexact() -> None:
    one_ulp = 2.0**-23
    # 10 ULP off, and the inputs' rounding could move the result by 3 ULP: 4 × 3 = 12 ULP of band
    assert _judge([1.0 + 10 * one_ulp], [1.0], band=3 * one_ulp).status == "inexact"
    assert _judge([1.0 + 13 * one_ulp], [1.0], band=3 * one_ulp).status == "fail"


def test_reductions_get_log2_n_more() -> None:
    one_ulp = 2.0**-52
    assert _judge([1.0 + 13 * one_ulp], [1.0], fmt=F64, reduced_over=1024).status == "pass"  # 4 + 10
    assert _judge([1.0 + 15 * one_ulp], [1.0], fmt=F64, reduced_over=1024).status == "fail"


@pytest.mark.parametrize(
    ("got", "exact", "status"),
    [
        (math.nan, 1.0, "nonfinite"),
        (1.0, math.nan, "nonfinite"),
        (math.nan, math.nan, "pass"),
        (math.inf, 1.0, "nonfinite"),
        (3.4e38, math.inf, "nonfinite"),
        (-math.inf, math.inf, "nonfinite"),
        (math.inf, math.inf, "pass"),
        (math.inf, 3.5e38, "pass"),  # the exact value rounds to +inf in float32
        (3.4028234663852886e38, 3.5e38, "nonfinite"),  # ... so the largest finite float32 is the wrong class
    ],
)
def test_nonfinite_agreement(got: float, exact: float, status: str) -> None:
    assert _judge([got], [exact]).status == status


def test_overflow_by_rounding_counts_as_infinite_in_float16() -> None:
    f16 = float_format("float16")
    assert _judge([65504.0], [65530.0], fmt=f16).status == "nonfinite"  # 65530 rounds to +inf in float16
    assert _judge([math.inf], [65530.0], fmt=f16).status == "pass"
    assert _judge([65504.0], [65519.0], fmt=f16).status == "pass"  # 65519 rounds to 65504


def test_ulp_is_taken_at_the_exact_value_below_a_power_of_two() -> None:
    # exact = 1 - 2^-60 (a double-double 1.0 + (-2^-60)): float32's ULP there is 2^-24, not 2^-23
    verdict = judge(np.array([1.0 - 2.0**-24]), np.array([1.0]), np.array([-(2.0**-60)]), np.zeros(1), F32, None)
    assert verdict.max_ulp_error == pytest.approx(1.0 - 2.0**-36, rel=1e-12)


def test_worst_is_nonfinite_before_large_error() -> None:
    verdict = _judge([2.0, math.nan, 1.0], [1.0, 1.0, 1.0])
    assert verdict.status == "nonfinite" and verdict.worst_index == (1,)
    assert verdict.n_bad == 2


def test_shape_mismatch_fails() -> None:
    verdict = judge(np.zeros((4, 4)), np.zeros(4), np.zeros(4), np.zeros(4), F32, None)
    assert verdict.status == "fail" and "shape (4, 4)" in verdict.message


def test_float32_zero_at_minus_15_is_fail_not_inexact() -> None:
    """The design's example: a float32 loss of 0.0 where the exact value is 3.06e-07 (x = -15, y = 0)."""
    case = Case("m15", "t", "logits", np.array([-15.0]), np.array([0.0]))
    ref = reference(case.inputs("float32"), "logits")
    hi, lo, band = ref.loss("none")
    verdict = judge(np.array([0.0]), hi, lo, band, F32, None)
    assert verdict.status == "fail"
    assert verdict.expected == pytest.approx(3.059022737137204858970192e-07, rel=2**-24)
    assert verdict.max_ulp_error > 2**20
    # while the correctly rounded float32 value passes
    assert judge(np.array([np.float32(3.059022737137204858970192e-07)], dtype=np.float64), hi, lo, band, F32,
                 None).status == "pass"


def test_gradient_near_zero_crossing_is_inexact() -> None:
    """σ(x) − y at y ≈ σ(x): cancellation that any backward-stable algorithm may suffer."""
    x = 0.75
    y = float(np.float32(1 / (1 + math.exp(-x))))  # the label rounded next to sigmoid(x)
    case = Case("cross", "t", "logits", np.array([x]), np.array([y]))
    ref = reference(case.inputs("float32"), "logits")
    hi, lo, band = ref.grad("none")
    # computing σ(x) in float32 and subtracting y: an error of ~1 ULP of σ(x), many ULPs of the tiny result
    naive = float(np.float32(1 / (1 + np.exp(np.float32(-x)))) - np.float32(y)) + 2.0**-24
    verdict = judge(np.array([naive]), hi, lo, band, F32, None)
    assert verdict.max_ulp_error > 4
    assert verdict.status == "inexact"


@pytest.mark.parametrize(("dtype", "fmt"), [("float64", float_format("float64")), ("float32", F32)])
def test_hard_label_error_is_never_inexact(dtype: str, fmt) -> None:
    """torch's gradient at x = 40, y = 1 is 0.0 where −σ(−40) = −4.248354255291589e-18 is exact (pytorch#195529):
    1 − σ(40) cancels. A label of exactly 1 is exact by meaning: no rounding slack may excuse it."""
    case = Case("x40", "t", "logits", np.array([40.0]), np.array([1.0]))
    ref = reference(case.inputs(dtype), "logits")
    hi, lo, band = ref.grad("none")
    assert band.tolist() == [pytest.approx(-hi[0] * (1 - math.exp(-40.0)) * fmt.ulp(40.0) / 2, rel=1e-12)]
    assert hi[0] == pytest.approx(-4.248354255291589e-18, rel=1e-15)
    assert judge(np.array([0.0]), hi, lo, band, fmt, None).status == "fail"


def test_only_soft_labels_and_weights_carry_rounding_slack() -> None:
    """At x = 2 (float32) the gradient's band is |∂g/∂x|·½ulp(x) + |∂g/∂y|·½ulp(y) + |∂g/∂w|·½ulp(w) + …: a label
    of 0 or 1 and a weight or pos_weight of 1 add nothing (exact by meaning); a label of ½, exact in every dtype
    but soft, still counts as rounded, and so do a weight of 2 and a pos_weight of 3."""
    x = np.full(4, 2.0)
    y = np.array([0.0, 1.0, 0.5, 1.0])
    hard = Case("hard", "t", "logits", x, y, weight=np.ones(4), pos_weight=np.ones(4))
    soft = Case("soft", "t", "logits", x, y, weight=np.full(4, 2.0), pos_weight=np.full(4, 3.0))
    s, half_x = 1 / (1 + math.exp(-2.0)), F32.ulp(2.0) / 2
    d_dx = s * (1 - s)  # ∂g/∂x with weight 1, pos_weight 1: (1 − y + y)·σ(x)σ(−x)
    hard_band = reference(hard.inputs("float32"), "logits").grad("none")[2]
    expected = [d_dx * half_x, d_dx * half_x, d_dx * half_x + 1.0 * F32.ulp(0.5) / 2, d_dx * half_x]
    np.testing.assert_allclose(hard_band, expected, rtol=1e-12)
    soft_band = reference(soft.inputs("float32"), "logits").grad("none")[2]
    assert (soft_band > 2 * hard_band).all()
