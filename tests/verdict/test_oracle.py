"""The exact reference against independently known values, and the fast path's error bound against mpmath.

Expected numbers come from mpmath at 60 digits, evaluated outside the harness:
softplus(-15) = 3.059022737137204858970192e-07, softplus(-104) = 6.813556821545298513418186e-46,
softplus(-90) = 8.194012623990515430361108e-40, sigmoid(-40) = 4.248354255291588977280721e-18,
softplus(1) = 1.313261687518222834048995, log(2) = 0.6931471805599453094172321,
worked example mean = 0.6219186506146223452856878.
"""

from __future__ import annotations

import math
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import SEED_MEAN_LOSS, Case, builtin_cases, float_format
from harness.verdict.oracle import (
    Recent,
    _fast_logits,
    _fast_probs,
    _mp_logits,
    _mp_probs,
    _operands,
    cached_reference,
    reference,
)


def _case(x: list[float], y: list[float], form: str = "logits", **extra: np.ndarray) -> Case:
    return Case("t", "test", form, np.array(x), np.array(y), **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_seed_example_mean_both_forms(dtype: str) -> None:
    # float64: a double-double from mpmath (the literal has 25 digits); smaller dtypes: the fast path,
    # guaranteed to 1/1024 of their ULP
    tolerance = 1e-24 if dtype == "float64" else float(float_format(dtype).ulp(0.6)) / 1024
    logits, probs = builtin_cases(families=["seed"])
    ref = reference(logits.inputs(dtype), "logits")
    with mpmath.workdps(40):
        assert abs(mpmath.mpf(ref.mean_hi) + ref.mean_lo - mpmath.mpf("0.6219186506146223452856878")) < tolerance
    if dtype == "float64":
        assert ref.mean_hi == SEED_MEAN_LOSS
    # probabilities: 13 elements at p = 0.5 and 3 at p = sigmoid(1) rounded to the dtype, all with y = 1 or
    # x = 0, so the mean is (13·log 2 − 3·log p) / 16, evaluated here with mpmath on the rounded p
    p = float(probs.inputs(dtype).x[1, 1])
    with mpmath.workdps(40):
        expected = (13 * mpmath.log(2) - 3 * mpmath.log(mpmath.mpf(p))) / 16
        ref = reference(probs.inputs(dtype), "probs")
        assert abs(mpmath.mpf(ref.mean_hi) + ref.mean_lo - expected) < tolerance


def test_known_logit_values_float64() -> None:
    ref = reference(_case([-15.0, -104.0, 1.0, 0.0, 40.0, -800.0], [0, 0, 1, 1, 1, 0]).inputs("float64"), "logits")
    expected_loss = [3.059022737137204858970192e-07, 6.813556821545298513418186e-46, 0.3132616875182228340489955,
                     0.6931471805599453094172321, 4.248354255291588977280721e-18, 0.0]
    # hi is the correctly rounded float64 of each (exp(-800) ≈ 3.7e-348 is below float64's range: 0)
    assert ref.loss_hi.tolist() == expected_loss
    assert ref.grad_hi[4] == -4.248354255291588977280721e-18
    assert ref.grad_hi[3] == -0.5
    assert ref.slow_elements == 6  # float64 targets always take the mpmath path


def test_float32_reference_keeps_subnormal_losses() -> None:
    ref = reference(_case([-90.0, -104.0, -15.0], [0, 0, 0]).inputs("float32"), "logits")
    assert ref.loss_hi[0] == pytest.approx(8.194012623990515430361108e-40, rel=1e-15)
    assert ref.loss_hi[1] == pytest.approx(6.813556821545298513418186e-46, rel=1e-15)
    assert ref.loss_hi[2] == pytest.approx(3.059022737137204858970192e-07, rel=1e-15)


def test_infinities_and_zero_coefficients() -> None:
    inf = math.inf
    ref = reference(_case([inf, inf, -inf, -inf, inf], [1, 0, 0, 0.5, 0.5]).inputs("float32"), "logits")
    np.testing.assert_array_equal(ref.loss_hi, [0.0, inf, 0.0, inf, inf])
    np.testing.assert_array_equal(ref.grad_hi, [0.0, 1.0, 0.0, -0.5, 0.5])
    probs = reference(_case([0.0, 0.0, 1.0, 1.0, 0.0], [0, 1, 1, 0, 0.5], "probs").inputs("float64"), "probs")
    np.testing.assert_array_equal(probs.loss_hi, [0.0, inf, 0.0, inf, inf])
    np.testing.assert_array_equal(probs.grad_hi, [1.0, -inf, -1.0, inf, -inf])


def test_nan_and_out_of_domain_follow_the_formula() -> None:
    ref = reference(_case([math.nan, 0.0], [1.0, 1.5]).inputs("float64"), "logits")
    assert math.isnan(ref.loss_hi[0])
    # y = 1.5 at x = 0: (1 - 1.5)·log 2 + 1.5·log 2 = log 2
    assert ref.loss_hi[1] == pytest.approx(0.6931471805599453, rel=2**-52)
    probs = reference(_case([-0.1, 1.1], [0.0, 0.0], "probs").inputs("float64"), "probs")
    assert probs.loss_hi[0] == pytest.approx(-math.log1p(0.1), rel=2**-50)  # -log(1.1)
    assert math.isnan(probs.loss_hi[1])  # log of a negative number


def test_weights_reductions_and_pos_weight() -> None:
    x, y = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])
    case = _case(x.tolist(), y.tolist(), weight=np.array([2.0, 3.0]), pos_weight=np.array([5.0, 7.0]))
    ref = reference(case.inputs("float64"), "logits")
    ln2 = 0.6931471805599453094172321
    # [2·5·ln2, 3·1·ln2]: pos_weight multiplies the positive term only
    assert ref.loss_hi[0, 0] == pytest.approx(10 * ln2, rel=2**-52)
    assert ref.loss_hi[0, 1] == pytest.approx(3 * ln2, rel=2**-52)
    assert ref.sum_hi == pytest.approx(13 * ln2, rel=2**-52)
    assert ref.mean_hi == pytest.approx(6.5 * ln2, rel=2**-52)
    # d/dx: w·[(1-y)σ(x) - p·y·σ(-x)] = [2·(-5·0.5), 3·0.5]
    np.testing.assert_array_equal(ref.grad_hi, [[-5.0, 1.5]])
    np.testing.assert_array_equal(ref.grad(reduction="mean")[0], [[-2.5, 0.75]])


def test_a_sum_past_the_largest_float64_is_inf_and_its_mean_is_still_exact() -> None:
    # l(x, 0) = softplus(x) = x + log1p(e^-x) = x exactly in float64 for x = 1e308: the sum 2e308 overflows
    # (math.fsum raises on it), the mean 1e308 does not; found by the fuzzer
    ref = reference(_case([1e308, 1e308], [0.0, 0.0]).inputs("float64"), "logits")
    assert ref.sum_hi == math.inf
    assert ref.mean_hi == 1e308 and ref.mean_lo == 0.0
    np.testing.assert_array_equal(ref.loss_hi, [1e308, 1e308])


def test_empty_and_mismatched() -> None:
    empty = reference(_case([], []).inputs("float32"), "logits")
    assert empty.n == 0 and empty.sum_hi == 0.0 and math.isnan(empty.mean_hi)
    mismatch = Case("m", "t", "logits", np.zeros(4), np.zeros((4, 1)))
    assert "differ" in (reference(mismatch.inputs("float32"), "logits").undefined or "")


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(-200, 200, allow_nan=False, width=32),
    y=st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.9990234375, 2.0**-20]),
    p=st.sampled_from([1.0, 3.0, 0.5]),
    form=st.sampled_from(["logits", "probs"]),
)
def test_fast_path_bound_holds(x: float, y: float, p: float, form: str) -> None:
    """Wherever the float64 fast path claims an error bound, mpmath at 300 bits confirms it."""
    if form == "probs":
        x = 1 / (1 + math.exp(-x / 10))
    case = _case([x], [y], form, pos_weight=np.array([p]))
    operands = _operands(case.inputs("float32"))
    fast = (_fast_logits if form == "logits" else _fast_probs)(operands)
    with mpmath.workprec(300):
        loss, grad = (_mp_logits if form == "logits" else _mp_probs)(operands.x[0], operands.y[0], 1.0, p)
        for value, bound, exact in ((fast.loss[0], fast.loss_bound[0], loss), (fast.grad[0], fast.grad_bound[0], grad)):
            if math.isfinite(value):
                assert abs(mpmath.mpf(value) - exact) <= bound


def test_the_disk_cache_serves_a_reference_and_a_damaged_entry_is_recomputed(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCE_HARNESS_CACHE", str(tmp_path))
    inputs = Case("c", "t", "logits", np.array([0.0, 3.0]), np.array([1.0, 0.0])).inputs("float32")
    assert cached_reference(inputs, "logits") is None
    first = reference(inputs, "logits")
    assert first.mean_hi == pytest.approx((math.log(2) + 3 + math.log1p(math.exp(-3))) / 2, rel=1e-15)
    stored = cached_reference(inputs, "logits")
    assert stored is not None and stored.mean_hi == first.mean_hi and np.array_equal(stored.loss_hi, first.loss_hi)
    (entry,) = (tmp_path / "reference").iterdir()
    whole = entry.read_bytes()
    entry.write_bytes(b"not an npz")
    assert cached_reference(inputs, "logits") is None and not entry.exists()  # removed, never trusted
    entry.write_bytes(whole[:100])  # a truncated entry (a write cut short): a zip without its directory
    assert cached_reference(inputs, "logits") is None and not entry.exists()


def test_recent_keeps_what_fits_its_bounds_and_lets_the_least_recently_used_go() -> None:
    entry = 1024  # each entry's own bytes, beside its arrays'
    recent: Recent[str, str] = Recent(budget=100 + 2 * entry, most=3)
    recent.put("a", "A", 40)
    recent.put("b", "B", 40)
    assert recent.get("a") == "A"  # now the most recently used
    recent.put("c", "C", 40)  # 120 bytes of arrays: "b", the least recently used, goes
    assert (recent.get("b"), recent.get("a"), recent.get("c"), recent.used) == (None, "A", "C", 80 + 2 * entry)
    recent.put("a", "A2", 10)  # a key put again replaces its value and its size
    assert (recent.get("a"), recent.used) == ("A2", 50 + 2 * entry)
    recent.put("big", "X", 500)  # larger than the budget: kept alone, the newest
    assert (recent.get("a"), recent.get("c"), recent.get("big"), recent.used) == (None, None, "X", 500 + entry)
    small: Recent[int, int] = Recent(most=3)
    for key in range(5):
        small.put(key, key, 0)
    assert [small.get(key) for key in range(5)] == [None, None, 2, 3, 4]  # no more than `most`
