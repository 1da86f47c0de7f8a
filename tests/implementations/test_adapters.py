"""Each framework's adapter, in this process: the worked example, gradients, options and failure modes.

Expected values: the worked example's mean is 0.6219186506146224 in float64 (mpmath:
0.62191865061462234528…); its gradient w.r.t. the logits is (σ(x) − y)/16 per element: 0.5/16 at x = 0, y = 0;
−0.5/16 at x = 0, y = 1; −σ(−1)/16 = −0.016808838835624694 at x = 1, y = 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from cases import Case, builtin_cases, float_format
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Adapter, Unsupported, adapter_classes

ADAPTERS = adapter_classes()
SEED_LOGITS, SEED_PROBS = builtin_cases(families=["seed"])


@pytest.fixture(scope="module", params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    cls = ADAPTERS[request.param]
    if not cls.is_available():
        pytest.skip(f"{request.param} is not installed")
    instance = cls()
    instance.load(threads=1)
    return instance


def _impl(adapter: Adapter, form: str):
    return next(i for i in adapter.implementations if i.input_form == form)


@pytest.mark.parametrize("case", [SEED_LOGITS, SEED_PROBS], ids=str)
def test_seed_example_float64(adapter: Adapter, case: Case) -> None:
    out = adapter.compute(_impl(adapter, case.input_form), case.inputs("float64").arrays(), "mean", "cpu")
    assert out.out_dtype == "float64"
    ulp = 2.0**-53  # ULP of float64 in [0.5, 1)
    got = float(out.loss)
    assert abs(got - 0.6219186506146224) <= 4 * ulp, f"out={got!r}, but should be 0.6219186506146224"


@pytest.mark.parametrize("case", [SEED_LOGITS, SEED_PROBS], ids=str)
def test_seed_example_float32_against_reference(adapter: Adapter, case: Case) -> None:
    inputs = case.inputs("float32")
    out = adapter.compute(_impl(adapter, case.input_form), inputs.arrays(), "mean", "cpu")
    assert out.out_dtype == "float32"
    ref = reference(inputs, case.input_form)
    verdict = judge(out.loss, *ref.loss("mean"), float_format("float32"), ref.n)
    assert verdict.status == "pass", f"out={float(out.loss)!r}, but should be {ref.mean_hi!r} ({verdict})"


def test_seed_gradient_of_mean(adapter: Adapter) -> None:
    out = adapter.compute(_impl(adapter, "logits"), SEED_LOGITS.inputs("float64").arrays(), "mean", "cpu")
    assert out.grad is not None and out.grad.shape == (4, 4)
    np.testing.assert_allclose(out.grad[0, 0], 0.5 / 16, rtol=4 * 2.0**-53)
    np.testing.assert_allclose(out.grad[1, 2], -0.5 / 16, rtol=4 * 2.0**-53)
    np.testing.assert_allclose(out.grad[1, 1], -0.016808838835624694, rtol=8 * 2.0**-53)


def test_reductions_and_weights(adapter: Adapter) -> None:
    """weight (C,) and the three reductions: mean = Σ w·l / n, sum = Σ w·l, none per element."""
    x = np.zeros((2, 2))
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    case = Case("w", "t", "logits", x, y, weight=np.array([2.0, 3.0]))
    arrays = case.inputs("float64").arrays()
    impl = _impl(adapter, "logits")
    ln2 = 0.6931471805599453
    none = adapter.compute(impl, arrays, "none", "cpu").loss
    np.testing.assert_allclose(none, [[2 * ln2, 3 * ln2], [2 * ln2, 3 * ln2]], rtol=4 * 2.0**-53)
    np.testing.assert_allclose(adapter.compute(impl, arrays, "sum", "cpu").loss, 10 * ln2, rtol=4 * 2.0**-53)
    np.testing.assert_allclose(adapter.compute(impl, arrays, "mean", "cpu").loss, 2.5 * ln2, rtol=4 * 2.0**-53)


def test_pos_weight_multiplies_positive_term(adapter: Adapter) -> None:
    case = Case("p", "t", "logits", np.zeros(2), np.array([1.0, 0.0]), pos_weight=np.array([3.0]))
    out = adapter.compute(_impl(adapter, "logits"), case.inputs("float64").arrays(), "none", "cpu")
    np.testing.assert_allclose(out.loss, [3 * 0.6931471805599453, 0.6931471805599453], rtol=4 * 2.0**-53)
    assert "pos_weight" in out.api or "p·y" in out.api or "p=" in out.api


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_dtypes_round_trip(adapter: Adapter, dtype: str) -> None:
    out = adapter.compute(_impl(adapter, "logits"), SEED_LOGITS.inputs(dtype).arrays(), "none", "cpu")
    assert out.out_dtype == dtype
    assert out.loss.dtype == np.float64 and out.loss.shape == (4, 4)
    fmt = float_format(dtype)
    assert abs(float(out.loss[0, 0]) - 0.6931471805599453) <= float(fmt.ulp(0.69))  # log 2 to within 1 ULP


def test_unknown_device_is_unsupported(adapter: Adapter) -> None:
    if "gpu" in adapter.devices():
        pytest.skip("this machine has a GPU")
    with pytest.raises(Unsupported):
        adapter.compute(_impl(adapter, "logits"), SEED_LOGITS.inputs("float32").arrays(), "mean", "gpu")
