"""scikit-learn's adapter in this process: log_loss (probabilities) and HalfBinomialLoss (logits).

Expected values from first principles or mpmath: softplus(−x) = log(1 + e^−x) is the loss at y = 1;
σ(x)σ(−x) = 1/4 at x = 0 is the Hessian; log_loss's clip at p = 0, y = 1 gives −log(eps) with eps = 2^−23 in
float32, 23·ln 2 = 15.942385152878742 (then rounded to float32), and the exact loss there is +inf.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest

from cases import Case, float_format
from harness.verdict.conventions import load_conventions, predict
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Unsupported
from tests.frameworks import loaded_adapter

LN2 = 0.6931471805599453


@pytest.fixture(scope="module")
def sklearn() -> Any:
    return loaded_adapter("sklearn")


def _impl(adapter: Any, name: str) -> Any:
    return adapter.implementation(name)


def _softplus_minus(x: float) -> float:
    """The exact loss at y = 1, log(1 + e^−x), rounded once to float64 (mpmath at 60 digits)."""
    with mpmath.workdps(60):
        return float(mpmath.log1p(mpmath.exp(-mpmath.mpf(x))))


def _status(case: Case, dtype: str, got: np.ndarray, reduction: str = "none") -> str:
    inputs = case.inputs(dtype)
    exact = reference(inputs, case.input_form)
    return judge(got, *exact.loss(reduction), float_format(dtype), None if reduction == "none" else exact.n).status


def test_half_binomial_is_bce_with_logits_not_half_of_it(sklearn: Any) -> None:
    """The "half" is of the deviance (2 × the negative log-likelihood): l = softplus(x) − y·x, BCE itself."""
    case = Case("h", "t", "logits", np.array([0.0, -3.0, 1.5]), np.array([0.0, 0.0, 0.25]))
    out = sklearn.compute(_impl(sklearn, "sklearn.logits"), case.inputs("float64").arrays(), "none", "cpu")
    expected = [LN2, math.log1p(math.exp(-3.0)), 0.75 * math.log1p(math.exp(1.5)) + 0.25 * _softplus_minus(1.5)]
    np.testing.assert_allclose(out.loss, expected, rtol=8 * 2.0**-53)
    assert _status(case, "float64", out.loss) == "pass"


def test_loss_cancels_for_positive_logits_with_label_one(sklearn: Any) -> None:
    """`loss` computes log1pexp(x) − y·x: at x = 40, y = 1 log1pexp returns x and the difference is 0.0 where the
    exact value is e^−40 = 4.248354255291589e-18; at x = 2 log(1 + e^2) − 2 loses bits (a verified `fail`)."""
    case = Case("c", "t", "logits", np.array([40.0, 2.0]), np.array([1.0, 1.0]))
    out = sklearn.compute(_impl(sklearn, "sklearn.logits"), case.inputs("float64").arrays(), "none", "cpu")
    assert out.loss[0] == 0.0 and _softplus_minus(40.0) == pytest.approx(4.248354255291589e-18, rel=1e-15)
    assert abs(out.loss[1] - _softplus_minus(2.0)) > 4 * float(float_format("float64").ulp(0.127))
    assert _status(case, "float64", out.loss) == "fail"


def test_infinite_logit_is_nan(sklearn: Any) -> None:
    """x = +inf, y = 1: inf − 1·inf = NaN where the exact loss is 0 (`nonfinite`); its gradient is exact (0)."""
    case = Case("i", "t", "logits", np.array([math.inf]), np.array([1.0]))
    out = sklearn.compute(_impl(sklearn, "sklearn.logits"), case.inputs("float32").arrays(), "none", "cpu")
    assert math.isnan(out.loss[0]) and out.out_dtype == "float32"
    assert out.grad is not None and out.grad[0] == 0.0
    assert _status(case, "float32", out.loss) == "nonfinite"


def test_weighted_mean_divides_by_the_weights(sklearn: Any) -> None:
    """__call__ is np.average: Σ w·l / Σ w = ln 2 at x = 0 with w = [2, 3], not the harness's Σ w·l / n = 2.5 ln 2;
    the mean's gradient is divided by Σ w = 10 as LinearModelLoss does: w·(σ(0) − y) / 10."""
    case = Case("w", "t", "logits", np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 1.0]]), weight=np.array([2.0, 3.0]))
    out = sklearn.compute(_impl(sklearn, "sklearn.logits"), case.inputs("float64").arrays(), "mean", "cpu")
    assert float(out.loss) == pytest.approx(LN2, rel=4 * 2.0**-53)
    assert out.grad is not None
    np.testing.assert_allclose(out.grad, [[-0.1, 0.15], [0.1, -0.15]], rtol=4 * 2.0**-53)
    assert _status(case, "float64", out.loss, "mean") == "fail"


def test_hessian_is_grad2(sklearn: Any) -> None:
    """gradient_hessian's Hessian σ(x)σ(−x) = 1/4 at x = 0, / n for the mean; other derivatives are unsupported."""
    case = Case("g", "t", "logits", np.zeros(4), np.array([0.0, 1.0, 0.5, 1.0]))
    out = sklearn.compute(_impl(sklearn, "sklearn.logits"), case.inputs("float32").arrays(), "mean", "cpu",
                          derivatives=("grad2", "grad_y"))
    assert out.derivatives["grad2"].dtype == "float32"
    np.testing.assert_array_equal(out.derivatives["grad2"].values, [0.0625] * 4)
    assert out.derivatives["grad_y"].status == "unsupported"
    namespace: dict[str, Any] = {"DTYPE": "float32", "Y_DTYPE": "float32", "W_DTYPE": "float32", "REDUCTION": "mean"}
    exec(sklearn.repro_derivative_source(_impl(sklearn, "sklearn.logits"), "grad2"), namespace)
    _, grad2 = namespace["run"](np.zeros(4), np.array([0.0, 1.0, 0.5, 1.0]), None, None)
    np.testing.assert_array_equal(grad2, [0.0625] * 4)  # the reproducer computes what the audit judged


def test_log_loss_clip_is_the_documented_convention(sklearn: Any) -> None:
    """p = 0, y = 1 in float32: log_loss gives −log(2^−23) = 23 ln 2 in float32 where the exact loss is +inf; the
    convention `sklearn-log-loss-clip-float32` predicts exactly that value (the row is a `deviation`, not a pass)."""
    case = Case("clip", "t", "probs", np.array([0.0, 0.5]), np.array([1.0, 0.0]))
    inputs = case.inputs("float32")
    out = sklearn.compute(_impl(sklearn, "sklearn.probs"), inputs.arrays(), "sum", "cpu")
    clipped = float(np.float32(23 * LN2))  # −log(eps), rounded to float32
    assert out.out_dtype == "float32" and out.grad is None
    assert float(out.loss) == pytest.approx(clipped + LN2, rel=2.0**-23)
    assert _status(case, "float32", out.loss, "sum") == "nonfinite"  # the exact value is inf
    convention = next(c for c in load_conventions() if c.id == "sklearn-log-loss-clip-float32")
    assert convention.applies_to("sklearn.probs", "loss", "float32")
    prediction = predict(convention, inputs, "probs", "sum", "loss")
    assert prediction is not None and bool(prediction.acting)
    assert float(prediction.hi) == pytest.approx(float(out.loss), rel=2.0**-22)


def test_what_the_apis_do_not_take(sklearn: Any) -> None:
    """Soft labels (log_loss takes class labels), a per-element log_loss, float16 in HalfBinomialLoss: each
    `Unsupported` with the reason."""
    probs, logits = _impl(sklearn, "sklearn.probs"), _impl(sklearn, "sklearn.logits")
    soft = Case("s", "t", "probs", np.array([0.2, 0.6]), np.array([0.3, 1.0])).inputs("float64").arrays()
    with pytest.raises(Unsupported, match="takes class labels"):
        sklearn.compute(probs, soft, "mean", "cpu")
    with pytest.raises(Unsupported, match="no per-element form"):
        sklearn.compute(probs, soft, "none", "cpu")
    half = Case("f", "t", "logits", np.zeros(2), np.ones(2)).inputs("float16").arrays()
    with pytest.raises(Unsupported, match="float64 and float32 only"):
        sklearn.compute(logits, half, "mean", "cpu")


@pytest.mark.parametrize("impl", ["sklearn.logits", "sklearn.probs"])
def test_reproducer_computes_what_the_adapter_does(sklearn: Any, impl: str) -> None:
    implementation = _impl(sklearn, impl)
    x = np.array([0.25, 0.5]) if implementation.input_form == "probs" else np.array([2.0, -1.0])
    y, weight = np.array([1.0, 0.0]), np.array([1.5, 0.5])
    namespace: dict[str, Any] = {"DTYPE": "float32", "Y_DTYPE": "float32", "W_DTYPE": "float32", "REDUCTION": "sum"}
    exec(sklearn.repro_source(implementation, "eager"), namespace)
    loss, _ = namespace["run"](x, y, weight, None)
    arrays = {"x": x.astype(np.float32), "y": y.astype(np.float32), "weight": weight.astype(np.float32)}
    assert float(loss) == float(sklearn.compute(implementation, arrays, "sum", "cpu").loss)


@pytest.mark.slow
def test_audit_records_the_clip_as_a_deviation_and_the_cancellation_as_a_fail(tmp_path: Any) -> None:
    """One small audit in float32 through the worker: the clipped p = 0 is `deviation`, x = 30, y = 1 `fail`
    (exact e^−30 = 9.357622968840175e-14, sklearn 9.237e-14: x + e^−x − x in double)."""
    from harness import audit

    cases = [Case("p0_y1", "user", "probs", np.array([0.0, 0.5]), np.array([1.0, 0.0])),
             Case("x30_y1", "user", "logits", np.array([30.0]), np.array([1.0]))]
    rows = audit(frameworks=["sklearn"], dtypes=["float32"], cases=cases, out=tmp_path / "run", write_report=False)
    reference_rows = rows[(rows["check"] == "reference") & (rows["quantity"] == "loss")]
    clip = reference_rows[reference_rows["case"] == "p0_y1"]
    assert set(clip["status"]) == {"deviation"} and set(clip["deviation"]) == {"sklearn-log-loss-clip-float32"}
    cancel = reference_rows[(reference_rows["case"] == "x30_y1") & (reference_rows["reduction"] == "none")]
    assert list(cancel["status"]) == ["fail"]
