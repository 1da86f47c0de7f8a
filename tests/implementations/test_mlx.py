"""MLX's BCE (`mlx.nn.losses.binary_cross_entropy`) through its adapter, in this process, against values derived
from first principles or the mpmath reference.

Expected values: softplus(x) = log(1 + eˣ); the logits loss is l = (1 − y)·softplus(x) + y·softplus(−x) =
softplus(x) − x·y, its gradient σ(x) − y, d²l/dx² = σ(x)σ(−x), dl/dy = −x, dl/dw = l. mpmath (50 digits):
softplus(−15) = 3.0590232050182579e-07, softplus(−1) = 0.31326168751822284, σ(1)σ(−1) = 0.19661193324148185.
The worked example's mean is 0.6219186506146224 in float64 (tests/implementations/test_adapters.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cases import Case, builtin_cases, float_format
from harness.verdict.conventions import load_conventions, predict
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Adapter, Unsupported
from tests.frameworks import ADAPTERS, loaded_adapter

pytestmark = pytest.mark.skipif("mlx" not in ADAPTERS or not ADAPTERS["mlx"].is_available(),
                                reason="mlx is not installed")

SEED_LOGITS, SEED_PROBS = builtin_cases(families=["seed"])
SOFTPLUS_MINUS_15 = 3.0590232050182579e-07
SOFTPLUS_MINUS_1 = 0.31326168751822284


def _mlx() -> Adapter:
    return loaded_adapter("mlx")


def _status(out_loss: np.ndarray, case: Case, dtype: str, reduction: str = "none") -> str:
    """The judge's status of a loss against the mpmath reference of the case's inputs in `dtype`."""
    inputs = case.inputs(dtype)
    ref = reference(inputs, case.input_form)
    return judge(out_loss, *ref.loss(reduction), float_format(dtype), ref.n).status


def test_devices_are_the_cpu_only() -> None:
    assert _mlx().devices() == ["cpu"]  # mlx-cpu: no Metal, no CUDA backend here


def test_probabilities_worked_example_holds_in_float64() -> None:
    adapter = _mlx()
    out = adapter.compute(adapter.implementation("mlx.probs"), SEED_PROBS.inputs("float64").arrays(), "mean", "cpu")
    assert out.out_dtype == "float64"
    assert abs(float(out.loss) - 0.6219186506146224) <= 4 * 2.0**-53, f"out={float(out.loss)!r}"


def test_logits_in_float64_compute_exp_in_float32_precision() -> None:
    """MLX's CPU exp runs its float32 polynomial for float64 (ml-explore/mlx#3047): softplus(−1) is 6.7e-9 off,
    ~1.2e8 ULP of float64, where every other framework is within a few ULP. The audit records `fail`."""
    adapter = _mlx()
    case = Case("x_minus_1", "t", "logits", np.array([-1.0]), np.array([0.0]))
    out = adapter.compute(adapter.implementation("mlx.logits"), case.inputs("float64").arrays(), "none", "cpu")
    assert out.out_dtype == "float64"
    assert abs(float(out.loss[0]) - SOFTPLUS_MINUS_1) > 1e-9  # float32's precision, not float64's (1e-16)
    assert abs(float(out.loss[0]) - SOFTPLUS_MINUS_1) < 1e-7 * SOFTPLUS_MINUS_1
    assert _status(out.loss, case, "float64") == "fail"


def test_logits_loss_is_zero_at_x_15_y_1_in_float32() -> None:
    """logaddexp(0, 15) − 15·1 cancels: 15 + 3.06e-07 rounds to 15 in float32. The exact loss is softplus(−15)."""
    adapter = _mlx()
    case = Case("x15_y1", "t", "logits", np.array([15.0, -15.0]), np.array([1.0, 0.0]))
    out = adapter.compute(adapter.implementation("mlx.logits"), case.inputs("float32").arrays(), "none", "cpu")
    assert float(out.loss[0]) == 0.0, f"out={float(out.loss[0])!r}, the bug is fixed: the exact value is 3.059e-07"
    # x = −15, y = 0: no cancellation, only the error of MLX's float32 exp polynomial (5 ULP here)
    np.testing.assert_allclose(out.loss[1], SOFTPLUS_MINUS_15, rtol=16 * 2.0**-24)
    assert _status(out.loss, case, "float32") == "fail"


def test_probabilities_log_clamp_is_the_documented_convention() -> None:
    """p = 0 with y = 1: log 0 = −inf clipped to −100, so the loss is 100 (MLX's docstring), not inf."""
    adapter = _mlx()
    case = Case("p0_y1", "t", "probs", np.array([0.0, 0.5]), np.array([1.0, 1.0]))
    inputs = case.inputs("float32")
    out = adapter.compute(adapter.implementation("mlx.probs"), inputs.arrays(), "none", "cpu")
    assert float(out.loss[0]) == 100.0
    np.testing.assert_allclose(out.loss[1], math.log(2), rtol=2.0**-23)
    convention = next(c for c in load_conventions() if c.id == "mlx-bce-log-clamp")
    prediction = predict(convention, inputs, "probs", "none", "loss")
    assert prediction is not None and prediction.acting.tolist() == [True, False]
    assert float(prediction.hi[0]) == 100.0


def test_weights_are_broadcast_to_the_loss_shape_by_the_adapter() -> None:
    """MLX's API raises for weights of another shape than the loss's; the adapter broadcasts as users must.
    l = w·log 2 at x = 0; mean = Σ w·l / n, sum = Σ w·l."""
    adapter = _mlx()
    impl = adapter.implementation("mlx.logits")
    arrays = {"x": np.zeros((2, 2)), "y": np.array([[1.0, 0.0], [0.0, 1.0]]), "weight": np.array([2.0, 3.0])}
    rtol = 1e-7  # float64 with float32's exp (ml-explore/mlx#3047): log(1 + exp(0)) is exact, but keep slack
    per_element = [[2 * math.log(2), 3 * math.log(2)]] * 2
    np.testing.assert_allclose(adapter.compute(impl, arrays, "none", "cpu").loss, per_element, rtol=rtol)
    np.testing.assert_allclose(adapter.compute(impl, arrays, "sum", "cpu").loss, 10 * math.log(2), rtol=rtol)
    np.testing.assert_allclose(adapter.compute(impl, arrays, "mean", "cpu").loss, 2.5 * math.log(2), rtol=rtol)
    with pytest.raises(Unsupported, match="has no pos_weight"):
        adapter.compute(impl, {**arrays, "pos_weight": np.array([3.0])}, "none", "cpu")


def test_zero_dimensional_bfloat16_keeps_its_shape() -> None:
    adapter = _mlx()
    arrays = {"x": np.array(0.0), "y": np.array(1.0)}
    out = adapter.compute(adapter.implementation("mlx.logits"), arrays, "none", "cpu")
    assert out.loss.shape == () and out.out_dtype == "float64"
    bf = Case("scalar", "t", "logits", np.array(0.0), np.array(1.0)).inputs("bfloat16").arrays()
    out = adapter.compute(adapter.implementation("mlx.logits"), bf, "none", "cpu")
    assert out.loss.shape == () and out.grad is not None and out.grad.shape == () and out.out_dtype == "bfloat16"
    assert float(out.loss) == 0.69140625 and float(out.grad) == -0.5  # log 2 and σ(0) − 1 rounded to bfloat16


def test_compiled_mode_runs_the_compiled_graph_and_equals_eager() -> None:
    adapter = _mlx()
    impl = adapter.implementation("mlx.logits")
    arrays = SEED_LOGITS.inputs("float32").arrays()
    eager = adapter.compute(impl, arrays, "mean", "cpu")
    compiled = adapter.compute(impl, arrays, "mean", "cpu", "mx.compile")
    assert compiled.compiled == "compiled calls without a trace: 1"
    assert compiled.loss == eager.loss and compiled.grad is not None and eager.grad is not None
    np.testing.assert_array_equal(compiled.grad, eager.grad)


def test_further_derivatives_equal_first_principles() -> None:
    """At x = 1, y = ¼, w = 2 (mean over one element = the element): dl/dy = −w·x = −2 exactly; dl/dw = l =
    softplus(1) − ¼; d²l/dx² = w·σ(1)σ(−1); the forward tangent = w·(σ(1) − ¼). float32 inputs."""
    adapter = _mlx()
    arrays = Case("d", "t", "logits", np.array([1.0]), np.array([0.25]),
                  weight=np.array([2.0])).inputs("float32").arrays()
    wanted = ("grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2")
    out = adapter.compute(adapter.implementation("mlx.logits"), arrays, "mean", "cpu", derivatives=wanted)
    sigma = 1 / (1 + math.exp(-1.0))
    rtol = 8 * 2.0**-24  # a few float32 roundings
    expected = {"grad_y": -2.0, "grad_weight": 1.3132616875182228 - 0.25, "grad2": 2 * 0.19661193324148185,
                "grad_fwd": 2 * (sigma - 0.25)}
    for name, value in expected.items():
        got = out.derivatives[name].values
        assert got is not None, out.derivatives[name]
        np.testing.assert_allclose(got, np.full(got.shape, value), rtol=0 if name == "grad_y" else rtol, err_msg=name)
    assert out.derivatives["grad_pos_weight"].status == "unsupported"


def test_reproducer_source_runs_standalone() -> None:
    """The reproducer's `run` (the framework and NumPy only) gives what `compute` gives, eager and compiled."""
    adapter = _mlx()
    impl = adapter.implementation("mlx.logits")
    x, y = np.array([15.0, -1.0]), np.array([1.0, 0.0])
    for mode in adapter.modes:
        namespace: dict[str, object] = {"np": np, "DTYPE": "float32", "Y_DTYPE": "float32", "W_DTYPE": "float32",
                                        "REDUCTION": "none"}
        exec(compile(adapter.repro_source(impl, mode), "<repro>", "exec"), namespace)
        loss, grad = namespace["run"](x, y, None, None)  # type: ignore[operator]
        expected = adapter.compute(impl, {"x": x.astype(np.float32), "y": y.astype(np.float32)}, "none", "cpu")
        np.testing.assert_array_equal(loss, expected.loss)
        np.testing.assert_array_equal(grad, expected.grad)


@pytest.mark.slow
def test_audit_of_the_worked_example_in_float64(tmp_path: Path) -> None:
    """One family, one dtype, in MLX's own worker: the probabilities pass; the logits' float64 loss is off by
    float32's exp (a `fail`, linked to ml-explore/mlx#3047), never a pass."""
    import harness

    rows = harness.audit(frameworks=["mlx"], families=["seed"], dtypes=["float64"], out=tmp_path / "run",
                         write_report=False)
    loss = rows[(rows["check"] == "reference") & (rows["quantity"] == "loss") & (rows["reduction"] == "mean")
                & (rows["mode"] == "eager")].set_index("impl")["status"]
    assert loss["mlx.probs"] == "pass" and loss["mlx.logits"] == "fail", loss.to_dict()
    findings = harness.findings(tmp_path / "run")  # type: ignore[operator]  # the package is callable
    linked = [url for urls in findings["known_issues"] for url in urls]
    assert "https://github.com/ml-explore/mlx/issues/3047" in linked, findings[["title", "known_issues"]]
