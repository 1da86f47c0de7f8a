"""The exact derivatives against values known from first principles, and against mpmath at 60 (or 200) digits
evaluated here, with the formulas written out independently of the module:

    sp(x) = log(1 + eˣ), σ(x) = 1/(1 + e⁻ˣ);
    logits: dl/dx = w·((1 − y)σ(x) − p·y·σ(−x)), d²l/dx² = w(1 − y + py)σ(x)σ(−x),
    dl/dy = w·(p·sp(−x) − sp(x)), dl/dw = (1 − y)sp(x) + py·sp(−x), dl/dp = w·y·sp(−x).

Unless stated, values are compared as hi + lo against the mpmath value to 1e-30 relative (float64 double-double
values carry about 106 bits; the reference promises 1/1024 of the dtype's ULP, which this is far inside).
"""

from __future__ import annotations

import math
from pathlib import Path

import mpmath
import numpy as np
import pytest

from cases import Case, InputForm, float_format
from harness.verdict.derivatives import (
    DERIVATIVE_QUANTITIES,
    Exact,
    cached_derivative_reference,
    derivative_reference,
)
from harness.verdict.oracle import reference

INF, NAN = math.inf, math.nan
LN2 = "0.693147180559945309417232121458176568075500134360255254120680009"


def _case(x: object, y: object, form: InputForm = "logits", weight: np.ndarray | None = None,
          pos_weight: np.ndarray | None = None) -> Case:
    return Case("t", "test", form, np.array(x, dtype=np.float64), np.array(y, dtype=np.float64), weight, pos_weight)


def _value(exact: Exact) -> list[mpmath.mpf]:
    """hi + lo of every entry, exactly (at 250 digits)."""
    with mpmath.workdps(250):
        pairs = zip(exact.hi.ravel().tolist(), exact.lo.ravel().tolist(), strict=True)
        return [mpmath.mpf(hi) + mpmath.mpf(lo) for hi, lo in pairs]


def _assert_close(exact: Exact, expected: list[mpmath.mpf], rel: float = 1e-30) -> None:
    got = _value(exact)
    assert len(got) == len(expected)
    with mpmath.workdps(250):
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            message = f"entry {i}: out={mpmath.nstr(g, 35)}, but should be {mpmath.nstr(e, 35)}"
            assert abs(g - e) <= rel * abs(e), message


def _sp(x: float) -> mpmath.mpf:
    return mpmath.log1p(mpmath.exp(x))


def _sig(x: float) -> mpmath.mpf:
    return 1 / (1 + mpmath.exp(-x))


# ---------------------------------------------------------------------------------------- known values


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_logits_at_zero(dtype: str) -> None:
    case = _case([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], weight=np.array(1.0))
    ref = derivative_reference(case.inputs(dtype), "logits")
    grad2 = ref.quantity("grad2", "none")
    assert grad2.hi.tolist() == [0.25] * 3 and grad2.lo.tolist() == [0.0] * 3  # σ(0)σ(−0) = 1/4 exactly
    grad_y = ref.quantity("grad_y", "sum")  # p = 1: dl/dy = sp(−0) − sp(0) = 0
    assert grad_y.hi.tolist() == [0.0] * 3 and grad_y.reduced_over is None
    weight = ref.quantity("grad_weight", "sum")  # a 0-d weight: Σ_i sp(0) = 3·log 2, in the weight's shape
    assert weight.hi.shape == () and weight.reduced_over == 3
    with mpmath.workdps(60):
        _assert_close(weight, [3 * mpmath.mpf(LN2)])
        _assert_close(ref.quantity("grad_weight", "mean"), [mpmath.mpf(LN2)])
    assert ref.quantity("grad_fwd", "none").hi.tolist() == [0.5] * 3


def test_logits_grad_y_with_unit_pos_weight_is_minus_x() -> None:
    # p = 1: sp(−x) − sp(x) = −x exactly; the weight multiplies
    case = _case([2.0, -3.5, 0.125], [0.3, 1.0, 0.0], weight=np.array([1.0, 2.0, 4.0]))
    grad_y = derivative_reference(case.inputs("float32"), "logits").quantity("grad_y", "none")
    assert grad_y.hi.tolist() == [-2.0, 7.0, -0.5] and grad_y.lo.tolist() == [0.0] * 3


def test_pos_weight_derivatives_at_zero() -> None:
    # x = 0, y = 1, w = 3, p = 2: dl/dp = w·y·log 2, dl/dy = w(p − 1)log 2, dl/dx = −w·p/2, d²l/dx² = w·p/4
    case = _case([0.0], [1.0], weight=np.array([3.0]), pos_weight=np.array([2.0]))
    ref = derivative_reference(case.inputs("float64"), "logits")
    with mpmath.workdps(60):
        _assert_close(ref.quantity("grad_pos_weight", "none"), [3 * mpmath.mpf(LN2)])
        _assert_close(ref.quantity("grad_y", "none"), [3 * mpmath.mpf(LN2)])
        _assert_close(ref.quantity("grad_weight", "none"), [2 * mpmath.mpf(LN2)])
    assert ref.quantity("grad_fwd", "none").hi.tolist() == [-3.0]
    assert ref.quantity("grad2", "none").hi.tolist() == [1.5]
    assert ref.quantity("grad_pos_weight", "sum").reduced_over is None  # one element per entry


def test_probs_known_values() -> None:
    case = _case([0.5, 0.25], [0.0, 1.0], "probs", weight=np.array([1.0, 1.0]), pos_weight=np.array([1.0, 1.0]))
    ref = derivative_reference(case.inputs("float64"), "probs")
    # q = 0.5, y = 0: d²l/dq² = 1/(1 − q)² = 4, dl/dy = log(1/2) − log(1/2) = 0, dl/dq = 2
    # q = 0.25, y = 1: 1/q² = 16, dl/dy = log(3/4) − log(1/4) = log 3, dl/dq = −4, dl/dw = dl/dp = −log q = log 4
    assert ref.quantity("grad2", "none").hi.tolist() == [4.0, 16.0]
    assert ref.quantity("grad_fwd", "none").hi.tolist() == [2.0, -4.0]
    grad_y = ref.quantity("grad_y", "none")
    assert grad_y.hi[0] == 0.0 and grad_y.lo[0] == 0.0
    with mpmath.workdps(60):
        _assert_close(Exact(grad_y.hi[1:], grad_y.lo[1:], grad_y.band[1:], None), [mpmath.log(3)])
        _assert_close(ref.quantity("grad_weight", "none"), [mpmath.log(2), mpmath.log(4)])
        _assert_close(ref.quantity("grad_pos_weight", "none"), [mpmath.mpf(0), mpmath.log(4)])  # 0 exactly


# ------------------------------------------------------------------------------------------ reductions


def test_mean_divides_by_n() -> None:
    x, y = [0.5, -1.25, 3.0], [0.0, 1.0, 0.25]
    ref = derivative_reference(_case(x, y).inputs("float64"), "logits")
    with mpmath.workdps(60):
        grad_y = [_sp(-v) - _sp(v) for v in x]
        grad2 = [(1 - t + t) * _sig(v) * _sig(-v) for v, t in zip(x, y, strict=True)]
        grad = [(1 - t) * _sig(v) - t * _sig(-v) for v, t in zip(x, y, strict=True)]
        _assert_close(ref.quantity("grad_y", "mean"), [g / 3 for g in grad_y])
        _assert_close(ref.quantity("grad_y", "sum"), grad_y)
        _assert_close(ref.quantity("grad2", "mean"), [g / 3 for g in grad2])
        _assert_close(ref.quantity("grad_fwd", "mean"), [mpmath.fsum(grad) / 3])
    none, mean = ref.quantity("grad2", "none"), ref.quantity("grad2", "mean")
    np.testing.assert_allclose(mean.band, none.band / 3, rtol=1e-15)


def test_per_class_weight_sums_over_rows() -> None:
    x = np.linspace(-3.0, 2.5, 12).reshape(3, 4)
    y = np.array([[0, 1, 0.5, 1], [1, 0, 0, 0.25], [0, 0, 1, 1]], dtype=np.float64)
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    ref = derivative_reference(_case(x, y, weight=weight).inputs("float64"), "logits")
    with mpmath.workdps(60):
        losses = [[(1 - y[i, j]) * _sp(x[i, j]) + y[i, j] * _sp(-x[i, j]) for j in range(4)] for i in range(3)]
        columns = [mpmath.fsum(losses[i][j] for i in range(3)) for j in range(4)]
        for reduction, divisor in (("none", 1), ("sum", 1), ("mean", 12)):
            exact = ref.quantity("grad_weight", reduction)
            assert exact.hi.shape == (4,) and exact.reduced_over == 3
            _assert_close(exact, [c / divisor for c in columns])


def test_grad_fwd_sum_is_the_exact_sum() -> None:
    x, y = [0.5, -2.0, 3.0, 40.0], [1.0, 0.25, 0.0, 1.0]
    ref = derivative_reference(_case(x, y, pos_weight=np.array([1.5])).inputs("float64"), "logits")
    with mpmath.workdps(60):
        grad = [(1 - t) * _sig(v) - 1.5 * t * _sig(-v) for v, t in zip(x, y, strict=True)]
        _assert_close(ref.quantity("grad_fwd", "none"), grad)
        total = ref.quantity("grad_fwd", "sum")
        assert total.hi.shape == () and total.reduced_over == 4
        _assert_close(total, [mpmath.fsum(grad)])
        _assert_close(ref.quantity("grad_fwd", "mean"), [mpmath.fsum(grad) / 4])
    np.testing.assert_allclose(total.band, ref.quantity("grad_fwd", "none").band.sum(), rtol=1e-15)
    # σ(1) + σ(−1) = 1: the sum cancels to a round number, which the sum over the exact values keeps
    cancel = derivative_reference(_case([1.0, -1.0], [0.0, 0.0]).inputs("float64"), "logits")
    exact = cancel.quantity("grad_fwd", "sum")
    assert exact.hi == 1.0 and abs(float(exact.lo)) < 1e-100


def test_float64_accuracy_far_in_the_tail() -> None:
    # x = 40, y = 1, p = 3: d²l/dx² = 3σ(40)σ(−40) ≈ 1.27e-17, dl/dx = −3σ(−40), dl/dy = 3sp(−40) − sp(40)
    ref = derivative_reference(_case([40.0], [1.0], pos_weight=np.array([3.0])).inputs("float64"), "logits")
    with mpmath.workdps(200):
        _assert_close(ref.quantity("grad2", "none"), [3 * _sig(40) * _sig(-40)])
        _assert_close(ref.quantity("grad_fwd", "none"), [-3 * _sig(-40)])
        _assert_close(ref.quantity("grad_y", "none"), [3 * _sp(-40) - _sp(40)])
        _assert_close(ref.quantity("grad_pos_weight", "none"), [_sp(-40)])
        assert float(ref.quantity("grad2", "none").hi[0]) == pytest.approx(3 * 4.248354255291589e-18, rel=1e-15)


# ---------------------------------------------------------------------------------------------- bands


def test_band_counts_x_only_for_hard_labels_without_weights() -> None:
    inputs = _case([0.0, 0.3], [1.0, 0.0]).inputs("float32")
    ref = derivative_reference(inputs, "logits")
    x = float(inputs.x[1])
    half_ulp = float(float_format("float32").ulp(x)) / 2
    s, s_bar = 1 / (1 + math.exp(-x)), 1 / (1 + math.exp(x))
    grad2 = ref.quantity("grad2", "none").band  # ∂/∂x of σσ̄ = σσ̄(σ̄ − σ), 0 at x = 0
    assert grad2[0] == 0.0
    assert grad2[1] == pytest.approx(s * s_bar * abs(s_bar - s) * half_ulp, rel=1e-12) and grad2[1] > 0
    grad_y = ref.quantity("grad_y", "none").band  # |∂/∂x (sp(−x) − sp(x))| = σ + σ̄ = 1
    np.testing.assert_allclose(grad_y, [float(float_format("float32").smallest_subnormal) / 2, half_ulp], rtol=1e-12)


def test_band_of_soft_labels_and_weights() -> None:
    hard = derivative_reference(_case([0.3], [1.0]).inputs("float32"), "logits").quantity("grad_fwd", "none")
    inputs = _case([0.3], [0.3], weight=np.array([0.7])).inputs("float32")
    soft = derivative_reference(inputs, "logits").quantity("grad_fwd", "none")
    x, y, w = float(inputs.x[0]), float(inputs.y[0]), float(inputs.weight[0])  # type: ignore[index]
    ulp = float_format("float32").ulp
    s, s_bar = 1 / (1 + math.exp(-x)), 1 / (1 + math.exp(x))
    expected = (w * s * s_bar * float(ulp(x)) + w * (s + s_bar) * float(ulp(y))
                + abs((1 - y) * s - y * s_bar) * float(ulp(w))) / 2
    assert soft.band[0] == pytest.approx(expected, rel=1e-12) and soft.band[0] > hard.band[0]


def test_grad_fwd_matches_the_loss_oracle() -> None:
    """Where the two references speak of the same number (dl/dx), they agree to 1/512 of the dtype's ULP."""
    x = np.array([-30.0, -1.5, 0.0, 0.7, 12.0, 88.0])
    y = np.array([0.0, 1.0, 0.5, 0.1, 1.0, 0.0])
    for dtype in ("float64", "float32", "float16"):
        inputs = _case(x, y, weight=np.array(0.3)).inputs(dtype)
        exact = derivative_reference(inputs, "logits").quantity("grad_fwd", "none")
        hi, lo, band = reference(inputs, "logits").grad("none")
        unit = float_format(dtype).ulp(exact.hi)
        assert (np.abs((hi - exact.hi) + (lo - exact.lo)) <= unit / 512).all(), dtype
        np.testing.assert_allclose(band, exact.band, rtol=1e-12)


# ------------------------------------------------------------------------------------------ the edges


def test_infinite_logits_take_their_limits() -> None:
    case = _case([INF, INF, -INF, -INF], [0.0, 1.0, 0.0, 1.0], weight=np.ones(4), pos_weight=np.array([2.0]))
    ref = derivative_reference(case.inputs("float32"), "logits")
    expected = {
        "grad_fwd": [1.0, 0.0, 0.0, -2.0],  # σ(∞) = 1, σ(−∞) = 0
        "grad2": [0.0, 0.0, 0.0, 0.0],
        "grad_y": [-INF, -INF, INF, INF],  # p·sp(−x) − sp(x), coefficients 1 and p
        "grad_weight": [INF, 0.0, 0.0, INF],  # a zero coefficient removes its infinite term
    }
    for name, values in expected.items():
        exact = ref.quantity(name, "none")
        assert exact.hi.tolist() == values and exact.lo.tolist() == [0.0] * 4, name
    # y·sp(−x) = [0, 0, 0 (y = 0 removes sp(∞)), ∞], summed into the one pos_weight entry
    pos_weight = ref.quantity("grad_pos_weight", "sum")
    assert pos_weight.hi.tolist() == [INF] and pos_weight.reduced_over == 4


def test_probabilities_zero_and_one_take_their_limits() -> None:
    case = _case([0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], "probs", weight=np.ones(4), pos_weight=np.full(4, 2.0))
    ref = derivative_reference(case.inputs("float64"), "probs")
    expected = {
        "grad_fwd": [1.0, -INF, INF, -2.0],
        "grad2": [1.0, INF, INF, 2.0],
        "grad_y": [INF, INF, -INF, -INF],  # log(1 − q) − p·log q: +∞ at q = 0 for p > 0
        "grad_weight": [0.0, INF, INF, 0.0],
        "grad_pos_weight": [0.0, INF, 0.0, 0.0],
    }
    for name, values in expected.items():
        assert ref.quantity(name, "none").hi.tolist() == values, name
    # p = 0 removes the log q term: dl/dy at q = 0 is log 1 = 0
    zero = _case([0.0], [1.0], "probs", pos_weight=np.array([0.0]))
    assert derivative_reference(zero.inputs("float64"), "probs").quantity("grad_y", "none").hi.tolist() == [0.0]


def test_nan_propagates() -> None:
    ref = derivative_reference(_case([NAN, 0.0], [1.0, 1.0], weight=np.array(2.0)).inputs("float64"), "logits")
    for name in DERIVATIVE_QUANTITIES:
        if name == "grad_pos_weight":
            continue
        for reduction in ("none", "sum", "mean"):
            exact = ref.quantity(name, reduction)
            assert math.isnan(exact.hi.ravel()[0]), (name, reduction)
    assert ref.quantity("grad_fwd", "none").hi[1] == -1.0  # the other element is untouched


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="differ"):
        derivative_reference(Case("m", "t", "logits", np.zeros(4), np.zeros((4, 1))).inputs("float32"), "logits")
    with pytest.raises(ValueError, match="does not broadcast"):
        derivative_reference(_case([0.0] * 4, [0.0] * 4, weight=np.ones(3)).inputs("float32"), "logits")
    ref = derivative_reference(_case([0.0], [1.0]).inputs("float32"), "logits")
    with pytest.raises(ValueError, match="unknown derivative 'grad3'"):
        ref.quantity("grad3", "sum")
    with pytest.raises(ValueError, match="unknown reduction"):
        ref.quantity("grad2", "max")
    with pytest.raises(ValueError, match="needs a weight"):
        ref.quantity("grad_weight", "sum")
    with pytest.raises(ValueError, match="unknown input_form"):
        derivative_reference(_case([0.0], [1.0]).inputs("float32"), "logit")


def test_results_are_read_only() -> None:
    exact = derivative_reference(_case([0.0], [1.0]).inputs("float32"), "logits").quantity("grad2", "none")
    with pytest.raises(ValueError, match="read-only"):
        exact.hi[0] = 1.0


# ---------------------------------------------------------------------------------------------- cache


def test_the_disk_cache_round_trips_and_a_damaged_entry_is_recomputed(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCE_HARNESS_CACHE", str(tmp_path))
    inputs = _case([[0.0, 3.0], [-1.0, 2.0]], [[1.0, 0.0], [0.5, 1.0]], weight=np.array([2.0, 0.5])).inputs("float16")
    assert cached_derivative_reference(inputs, "logits") is None
    first = derivative_reference(inputs, "logits")
    (entry,) = (tmp_path / "derivatives").iterdir()
    stored = cached_derivative_reference(inputs, "logits")
    assert stored is not None and stored.n == 4 and set(stored.arrays) == set(first.arrays)
    for key, value in first.arrays.items():
        np.testing.assert_array_equal(stored.arrays[key], value, err_msg=key)
    assert stored.quantity("grad_weight", "mean").reduced_over == 2
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    assert cached_derivative_reference(inputs, "logits") is None and not entry.exists()  # removed, never trusted
    fresh = derivative_reference(inputs, "logits", use_cache=False)
    np.testing.assert_array_equal(fresh.quantity("grad2", "mean").hi, first.quantity("grad2", "mean").hi)
    assert not entry.exists()  # use_cache=False stores nothing
