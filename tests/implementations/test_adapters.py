"""Every implementation of every adapter, in this process: the worked example, gradients, options and failure
modes.

Expected values: the worked example's mean is 0.6219186506146224 in float64 (mpmath:
0.62191865061462234528…); its gradient w.r.t. the logits is (σ(x) − y)/16 per element: 0.5/16 at x = 0, y = 0;
−0.5/16 at x = 0, y = 1; −σ(−1)/16 = −0.016808838835624694 at x = 1, y = 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cases import Case, builtin_cases, float_format
from harness.verdict.conventions import load_conventions
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Implementation, Unsupported
from tests.frameworks import ADAPTERS, loaded_adapter

SEED_LOGITS, SEED_PROBS = builtin_cases(families=["seed"])
LN2 = 0.6931471805599453
# every API judged on BCE of its inputs as given (label smoothing is judged on the smoothed labels)
EVERY = [(name, impl) for name, cls in ADAPTERS.items() for impl in cls.implementations
         if impl.relation != "label_smoothing"]
LOGITS = [(name, impl) for name, impl in EVERY if impl.input_form == "logits"]
GRADIENTS = [(name, impl) for name, impl in LOGITS if impl.differentiable]
# APIs that do not compute in the float64 they are given (the audit reports those rows as findings)
NOT_FLOAT64 = {"mlx.logits": "MLX's CPU exp computes float64 in float32 precision (ml-explore/mlx#3047)"}
# APIs whose weighted mean is documented as the weighted average Σ w·l / Σ w (a convention of the audit)
WEIGHTED_AVERAGE = {impl for c in load_conventions() if c.kind == "weighted_average" for impl in c.impls}


def _params(cases: list[tuple[str, Implementation]]) -> list[Any]:
    return [pytest.param(name, impl, id=impl.impl,
                         marks=pytest.mark.xfail(strict=True, reason=NOT_FLOAT64[impl.impl]))
            if impl.impl in NOT_FLOAT64 else pytest.param(name, impl, id=impl.impl) for name, impl in cases]


def _has(name: str, impl: Implementation, dtype: str, reduction: str = "none") -> None:
    """Skip what the adapter declares it does not do (the harness writes those rows as `unsupported`)."""
    if dtype not in ADAPTERS[name].dtypes:
        pytest.skip(f"{name} declares no {dtype}: the harness writes its rows as unsupported")
    if reduction not in impl.reductions:
        pytest.skip(f"{impl.impl} computes no {reduction} reduction")


_adapter = loaded_adapter


def _ids(cases: list[tuple[str, Implementation]]) -> list[str]:
    return [impl.impl for _, impl in cases]


def _dtype(impl: Implementation, given: str) -> str:
    """The dtype a result comes in: the input's, or what the adapter declares its API computes in (Keras's loss
    classes cast to keras.config.floatx() = float32 and return float32 for float64, float16 and bfloat16 inputs
    alike; the audit reports that as OutDtype, and here the declaration is checked against the framework; under
    torch.autocast BCE runs in float32: half-precision inputs give float32, float64 stays float64)."""
    if impl.runs_on == "autocast" and given in ("float16", "bfloat16"):
        return "float32"
    return impl.compute_dtype or given


def _rtol(impl: Implementation, given: str, ulps: int = 4) -> float:
    return ulps * float_format(_dtype(impl, given)).eps / 2  # ulps of the dtype in [1, 2): relative, loosely


@pytest.mark.parametrize(("name", "impl"), _params(EVERY))
def test_seed_example_float64(name: str, impl: Implementation) -> None:
    _has(name, impl, "float64", "mean")
    case = SEED_LOGITS if impl.input_form == "logits" else SEED_PROBS
    out = _adapter(name).compute(impl, case.inputs("float64").arrays(), "mean", "cpu")
    assert out.out_dtype == _dtype(impl, "float64")
    ulp = float_format(out.out_dtype).eps / 2  # ULP in [0.5, 1)
    got = float(out.loss)
    assert abs(got - 0.6219186506146224) <= 4 * ulp, f"out={got!r}, but should be 0.6219186506146224"


@pytest.mark.parametrize(("name", "impl"), EVERY, ids=_ids(EVERY))
def test_seed_example_float32_against_reference(name: str, impl: Implementation) -> None:
    _has(name, impl, "float32", "mean")
    case = SEED_LOGITS if impl.input_form == "logits" else SEED_PROBS
    inputs = case.inputs("float32")
    out = _adapter(name).compute(impl, inputs.arrays(), "mean", "cpu")
    assert out.out_dtype == "float32"
    ref = reference(inputs, case.input_form)
    verdict = judge(out.loss, *ref.loss("mean"), float_format("float32"), ref.n)
    assert verdict.status == "pass", f"out={float(out.loss)!r}, but should be {ref.mean_hi!r} ({verdict})"


@pytest.mark.parametrize(("name", "impl"), _params(GRADIENTS))
def test_seed_gradient_of_mean(name: str, impl: Implementation) -> None:
    _has(name, impl, "float64", "mean")
    out = _adapter(name).compute(impl, SEED_LOGITS.inputs("float64").arrays(), "mean", "cpu")
    assert out.grad is not None and out.grad.shape == (4, 4) and out.grad_dtype == "float64"  # x's dtype
    np.testing.assert_allclose(out.grad[0, 0], 0.5 / 16, rtol=_rtol(impl, "float64"))
    np.testing.assert_allclose(out.grad[1, 2], -0.5 / 16, rtol=_rtol(impl, "float64"))
    np.testing.assert_allclose(out.grad[1, 1], -0.016808838835624694, rtol=_rtol(impl, "float64", 8))


@pytest.mark.parametrize(("name", "impl"), LOGITS, ids=_ids(LOGITS))
def test_reductions_and_weights(name: str, impl: Implementation) -> None:
    """weight (C,) and the three reductions: mean = Σ w·l / n (Σ w·l / Σ w = 10 ln 2 / 10 where the API documents
    a weighted average), sum = Σ w·l, none per element."""
    case = Case("w", "t", "logits", np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 1.0]]), weight=np.array([2.0, 3.0]))
    arrays = case.inputs("float64").arrays()
    adapter = _adapter(name)
    rtol = _rtol(impl, "float64")
    expected = {"none": [[2 * LN2, 3 * LN2], [2 * LN2, 3 * LN2]], "sum": 10 * LN2,
                "mean": LN2 if impl.impl in WEIGHTED_AVERAGE else 2.5 * LN2}
    for reduction in impl.reductions:
        np.testing.assert_allclose(adapter.compute(impl, arrays, reduction, "cpu").loss, expected[reduction],
                                   rtol=rtol)


@pytest.mark.parametrize(("name", "impl"), LOGITS, ids=_ids(LOGITS))
def test_pos_weight_multiplies_the_positive_term_or_is_unsupported(name: str, impl: Implementation) -> None:
    case = Case("p", "t", "logits", np.zeros(2), np.array([1.0, 0.0]), pos_weight=np.array([3.0]))
    adapter = _adapter(name)
    if impl.api_pos_weight is None:
        with pytest.raises(Unsupported, match="has no pos_weight"):
            adapter.compute(impl, case.inputs("float64").arrays(), "none", "cpu")
        return
    out = adapter.compute(impl, case.inputs("float64").arrays(), "none", "cpu")
    np.testing.assert_allclose(out.loss, [3 * LN2, LN2], rtol=4 * 2.0**-53)
    assert out.api == impl.api_pos_weight


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(("name", "impl"), LOGITS, ids=_ids(LOGITS))
def test_low_precision_dtypes_round_trip(name: str, impl: Implementation, dtype: str) -> None:
    _has(name, impl, dtype)
    try:
        out = _adapter(name).compute(impl, SEED_LOGITS.inputs(dtype).arrays(), "none", "cpu")
    except Unsupported as exc:  # an API without that dtype (sklearn's HalfBinomialLoss has no float16 kernel)
        pytest.skip(str(exc))
    assert out.out_dtype == _dtype(impl, dtype)
    assert out.loss.dtype == np.float64 and out.loss.shape == (4, 4)
    assert abs(float(out.loss[0, 0]) - LN2) <= float(float_format(out.out_dtype).ulp(0.69))  # log 2 within 1 ULP


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_unknown_device_and_mode_are_unsupported(name: str) -> None:
    adapter = _adapter(name)
    impl = next(i for i in adapter.implementations if i.input_form == "logits")
    arrays = SEED_LOGITS.inputs("float32").arrays()
    with pytest.raises(Unsupported, match="no mode 'warp'"):
        adapter.compute(impl, arrays, "mean", "cpu", "warp")
    if "gpu" not in adapter.devices():
        with pytest.raises(Unsupported):
            adapter.compute(impl, arrays, "mean", "gpu")


@pytest.mark.parametrize("name", [n for n, cls in ADAPTERS.items() if len(cls.modes) > 1])
def test_every_compiled_mode_proves_it_ran_compiled(name: str) -> None:
    adapter = _adapter(name)
    impl = next(i for i in adapter.implementations if i.input_form == "logits")
    for mode in adapter.modes[1:]:
        out = adapter.compute(impl, SEED_LOGITS.inputs("float32").arrays(), "mean", "cpu", mode)
        count = int(out.compiled.rsplit(":", 1)[1])  # "… executions: 1", "traced graphs: 1"
        assert count >= 1, out.compiled


@pytest.mark.parametrize("name", [n for n in ("jax", "torch") if n in ADAPTERS])
def test_compile_counters_count_what_the_framework_compiled(name: str) -> None:
    adapter = _adapter(name)
    impl = next(i for i in adapter.implementations if i.input_form == "logits")
    mode = "eager" if name == "jax" else "torch.compile"  # JAX compiles every eager primitive; torch only this
    arrays = {k: np.asarray(v) for k, v in SEED_LOGITS.inputs("float64").arrays().items()}
    arrays = {"x": arrays["x"][:3, :3].copy(), "y": arrays["y"][:3, :3].copy()}  # a shape no other test uses
    before = adapter.compile_stats()
    adapter.compute(impl, arrays, "sum", "cpu", mode)
    after = adapter.compile_stats()
    assert after["programs"] > before["programs"] and after["compile_s"] > before["compile_s"]
    adapter.compute(impl, arrays, "sum", "cpu", mode)  # the same shape and dtype again: nothing new
    assert adapter.compile_stats()["programs"] == after["programs"]
    assert ADAPTERS["numpy"]().compile_stats() == {}  # an adapter that compiles nothing says so
