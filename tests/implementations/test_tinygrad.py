"""tinygrad's adapter, in this process: what its formulas give at the inputs the audit flags, TinyJit's evidence,
its further derivatives, its reproducer, and its availability without a compiler.

Expected values from first principles (float64 unless said):
- BCEWithLogits(x = −15, y = 0) = log(1 + e^−15) = 3.059022737972553e-07. tinygrad computes it as
  log(e^0 + e^−15) + 0 in float32: 1 + e^−15 = 1 + 2.566·2^−23 rounds to 1 + 3·2^−23, whose log is 3·2^−23 (to
  within 2^−46 relative) = 3.5762786865234375e-07, 1.76e6 ULP above the exact value: a `fail`, not a pass. At
  x = −20, 1 + e^−20 rounds to 1: the loss is 0.0 (exact 2.0611536181902037e-09).
- BCE(q = 0, y = 0) = 0 (the y·log q term is absent); tinygrad computes −0·log 0 = −0·(−inf) = NaN.
- Derivatives of the logits loss, per element, w = weight, p = pos_weight: dl/dy = w·(p·softplus(−x) −
  softplus(x)); dl/dw = (1 − y)·softplus(x) + p·y·softplus(−x); dl/dp = w·y·softplus(−x); d²l/dx² =
  w·((1 − y) + p·y)·σ(x)σ(−x); for the sum, these per element (dl/dp summed over its broadcast).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cases import Case, builtin_cases, float_format
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Adapter, Unsupported
from tests.frameworks import ADAPTERS, loaded_adapter

SEED_LOGITS, SEED_PROBS = builtin_cases(families=["seed"])
THREE_ULP_ABOVE_ONE = 3 * 2.0**-23  # log(1 + 3·2^-23) in float32


@pytest.fixture(scope="module")
def tinygrad_adapter() -> Adapter:
    return loaded_adapter("tinygrad")


def test_logits_loss_below_the_float32_ulp_of_one_is_lost_and_judged_fail(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    case = Case("lost", "t", "logits", np.array([-15.0, -20.0]), np.array([0.0, 0.0]))
    inputs = case.inputs("float32")
    out = adapter.compute(adapter.implementation("tinygrad.logits"), inputs.arrays(), "none", "cpu")
    assert out.out_dtype == "float32"
    np.testing.assert_allclose(out.loss[0], THREE_ULP_ABOVE_ONE, rtol=2.0**-20)  # 3.576e-07, not 3.059e-07
    assert out.loss[1] == 0.0, f"out={out.loss[1]!r}, but tinygrad's log(1 + e^-20) in float32 should be 0.0"
    ref = reference(inputs, "logits")
    np.testing.assert_allclose(ref.loss("none")[0], [math.log1p(math.exp(-15.0)), math.log1p(math.exp(-20.0))],
                               rtol=1e-15)
    verdict = judge(out.loss, *ref.loss("none"), float_format("float32"), None)
    assert verdict.status == "fail", f"out={out.loss!r} should be judged fail, got {verdict}"


def test_probs_zero_times_log_zero_is_nan(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    arrays = {"x": np.array([0.0, 0.5]), "y": np.array([0.0, 1.0])}
    out = adapter.compute(adapter.implementation("tinygrad.probs"), arrays, "none", "cpu")
    assert math.isnan(out.loss[0]), f"out={out.loss[0]!r}, but tinygrad's -0·log(0) should be NaN (exact: 0)"
    assert out.loss[1] == pytest.approx(math.log(2), rel=2.0**-50)


def test_tinyjit_result_comes_from_a_replay_of_the_captured_graph(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    impl = adapter.implementation("tinygrad.logits")
    arrays = SEED_LOGITS.inputs("float64").arrays()
    out = adapter.compute(impl, arrays, "mean", "cpu", "TinyJit")
    assert out.compiled == "TinyJit captured-graph replays: 1"
    assert float(out.loss) == pytest.approx(0.6219186506146224, rel=4 * 2.0**-53)
    assert out.grad is not None
    np.testing.assert_allclose(out.grad[1, 1], -0.016808838835624694, rtol=8 * 2.0**-53)  # −σ(−1)/16
    again = adapter.compute(impl, {"x": -arrays["x"], "y": arrays["y"]}, "mean", "cpu", "TinyJit")
    assert again.compiled == "TinyJit captured-graph replays: 1"  # the same signature: its captured graph, new values
    assert float(again.loss) != float(out.loss)


def test_tinyjit_refuses_to_run_eagerly_when_jit_is_off(tinygrad_adapter: Adapter) -> None:
    from tinygrad.helpers import Context

    adapter = tinygrad_adapter
    with Context(JIT=0), pytest.raises(RuntimeError, match="TinyJit captured no graph"):
        adapter.compute(adapter.implementation("tinygrad.logits"), SEED_LOGITS.inputs("float64").arrays(), "sum",
                        "cpu", "TinyJit")


def test_further_derivatives_by_reverse_mode(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    x, y = np.array([0.3, -1.2, 2.0, -0.4]), np.array([0.25, 0.7, 1.0, 0.0])
    w, p = np.array([1.5, 0.5, 2.0, 0.75]), np.array([3.0])
    arrays = {"x": x, "y": y, "weight": w, "pos_weight": p}
    wanted = ("grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2")
    out = adapter.compute(adapter.implementation("tinygrad.logits"), arrays, "sum", "cpu", derivatives=wanted)
    softplus_x, softplus_minus_x, s = np.logaddexp(0, x), np.logaddexp(0, -x), 1 / (1 + np.exp(-x))
    expected = {
        "grad_y": w * (p[0] * softplus_minus_x - softplus_x),
        "grad_weight": (1 - y) * softplus_x + p[0] * y * softplus_minus_x,
        "grad_pos_weight": [np.sum(w * y * softplus_minus_x)],
        "grad2": w * ((1 - y) + p[0] * y) * s * (1 - s),
    }
    for name, values in expected.items():
        got = out.derivatives[name]
        assert got.values is not None, f"{name}: {got.status} {got.message}"
        np.testing.assert_allclose(got.values, values, rtol=1e-12, err_msg=name)  # a few float64 roundings each
    assert out.derivatives["grad_fwd"].status == "unsupported"
    assert "no forward-mode" in out.derivatives["grad_fwd"].message


def test_reproducer_runs_standalone_and_shows_the_lost_loss(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    source = adapter.repro_source(adapter.implementation("tinygrad.logits"), "TinyJit")
    namespace: dict[str, object] = {"np": np, "DTYPE": "float32", "Y_DTYPE": "float32", "W_DTYPE": "float32",
                                    "REDUCTION": "none"}
    exec(compile(source, "<repro>", "exec"), namespace)  # the adapter's own reproducer
    loss, grad = namespace["run"](np.array([-15.0, -20.0]), np.array([0.0, 0.0]), None, None)  # type: ignore[operator]
    assert loss[1] == 0.0 and loss[0] == pytest.approx(THREE_ULP_ABOVE_ONE, rel=2.0**-20)
    assert grad.shape == (2,)


def test_bfloat16_is_computed_or_unsupported_with_the_compiler_named(tinygrad_adapter: Adapter) -> None:
    adapter = tinygrad_adapter
    impl, arrays = adapter.implementation("tinygrad.logits"), SEED_LOGITS.inputs("bfloat16").arrays()
    try:
        out = adapter.compute(impl, arrays, "none", "cpu")
    except Unsupported as exc:  # clang 14 (Debian 12) cannot compile the __bf16 tinygrad's C renderer writes
        refused = str(exc)
    else:
        refused = ""
    if refused:
        assert "__bf16" in refused
        with pytest.raises(Unsupported, match="__bf16"):  # said again without asking the compiler again
            adapter.compute(impl, arrays, "mean", "cpu")
        return
    assert out.out_dtype == "bfloat16" and abs(float(out.loss[0, 0]) - math.log(2)) <= 2.0**-8  # 1 ULP at 0.69


def test_unavailable_without_its_compiler_and_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = ADAPTERS["tinygrad"]
    monkeypatch.setenv("CC", "clang-that-is-not-installed")
    assert not cls.is_available()
    reason = cls.unavailable_reason()
    assert "clang-that-is-not-installed" in reason and "apt-get install -y --no-install-recommends clang" in reason
    assert "PYTHON device" in reason
