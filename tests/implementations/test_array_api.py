"""The array API adapter: one stable formula on each namespace, in this process.

Expected values from first principles (mpmath where a value is not a simple number): l = (1 − y)·softplus(x) +
p·y·softplus(−x), dl/dx = (1 − y)·σ(x) − p·y·σ(−x); with probabilities l = −(y·log q + (1 − y)·log(1 − q)),
dl/dq = (1 − y)/(1 − q) − y/q. At the infinities: softplus(−inf) = 0, softplus(inf) = inf, σ(−inf) = 0, σ(inf) = 1.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from cases import Case, float_format
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Unsupported
from implementations.array_api_adapter import NAMESPACES
from tests.frameworks import ADAPTERS, loaded_adapter

pytestmark = pytest.mark.skipif("array_api" not in ADAPTERS or not ADAPTERS["array_api"].is_available(),
                                reason="array-api-compat is not installed")
SPACES = list(NAMESPACES)
DIFFERENTIABLE = [name for name, space in NAMESPACES.items() if space.differentiable]


def _adapter():  # type: ignore[no-untyped-def]
    return loaded_adapter("array_api")


def _compute(impl: str, case: Case, dtype: str, reduction: str = "none"):  # type: ignore[no-untyped-def]
    adapter = _adapter()
    return adapter.compute(adapter.implementation(impl), case.inputs(dtype).arrays(), reduction, "cpu")


@pytest.mark.parametrize("space", SPACES)
def test_infinite_logits_with_hard_labels_are_exact(space: str) -> None:
    """The absent term never meets 0·∞: x = ±inf give exactly 0 or inf, and the gradient 0 or ±1."""
    case = Case("inf", "t", "logits", np.array([np.inf, -np.inf, np.inf, -np.inf]), np.array([1.0, 0.0, 0.0, 1.0]))
    out = _compute(f"array_api.{space}", case, "float64")
    assert out.loss.tolist() == [0.0, 0.0, np.inf, np.inf], f"out={out.loss}, but should be [0, 0, inf, inf]"
    if NAMESPACES[space].differentiable:
        assert out.grad is not None and out.grad.tolist() == [0.0, 0.0, 1.0, -1.0], f"grad={out.grad}"
    else:
        assert out.grad is None


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # log 0 = -inf at y = 1
@pytest.mark.parametrize("space", SPACES)
def test_probabilities_zero_log_zero(space: str) -> None:
    """0·log 0 = 0: q = y = 0 and q = y = 1 give 0; q = 0 with y = 1 gives inf; dl/dq at q = y = 0 is 1."""
    case = Case("edges", "t", "probs", np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))
    out = _compute(f"array_api.{space}_probs", case, "float64")
    assert out.loss.tolist() == [0.0, 0.0, np.inf], f"out={out.loss}, but should be [0, 0, inf]"
    if NAMESPACES[space].differentiable:
        assert out.grad is not None and out.grad[0] == 1.0 and out.grad[1] == -1.0 and out.grad[2] == -np.inf


@pytest.mark.parametrize("space", DIFFERENTIABLE)
def test_gradient_at_zero_is_sigmoid_of_zero(space: str) -> None:
    """σ(0) − y = ±1/2 at x = 0 through autodiff: the where form of softplus has one derivative there (through
    xp.maximum and xp.abs JAX's subgradients give 0)."""
    case = Case("zero", "t", "logits", np.zeros(2), np.array([0.0, 1.0]))
    out = _compute(f"array_api.{space}", case, "float64")
    assert out.grad is not None and out.grad.tolist() == [0.5, -0.5], f"grad={out.grad}, but should be [0.5, -0.5]"


@pytest.mark.parametrize("space", SPACES)
def test_tiny_loss_keeps_its_precision(space: str) -> None:
    """l(−40, 0) = log1p(e^−40) = 4.2483542552915889e-18 (mpmath), within 4 ULP in float64, and the sum with
    pos_weight 3 at x = 2, y = 1 is 3·softplus(−2) = 3·log1p(e^−2)."""
    case = Case("tiny", "t", "logits", np.array([-40.0]), np.array([0.0]))
    exact = float(mpmath.log1p(mpmath.exp(-40)))
    got = float(_compute(f"array_api.{space}", case, "float64").loss[0])
    assert abs(got - exact) <= 4 * float(float_format("float64").ulp(exact)), f"out={got!r}, but should be {exact!r}"
    weighted = Case("pw", "t", "logits", np.array([2.0]), np.array([1.0]), pos_weight=np.array([3.0]))
    expected = 3 * float(mpmath.log1p(mpmath.exp(-2)))
    np.testing.assert_allclose(_compute(f"array_api.{space}", weighted, "float64", "sum").loss, expected,
                               rtol=4 * 2.0**-53)


def test_jax_flushes_a_subnormal_float32_loss_to_zero() -> None:
    """Recorded truthfully as not `pass`: at x = −90, y = 0 the exact float32 loss is e^−90 = 8.1940126e-40 (a
    subnormal); XLA's CPU backend flushes it to 0 (the row is `fail`, or `deviation` where a convention names
    flush-to-zero), while NumPy's namespace on the same formula keeps it within 4 ULP (`pass`)."""
    case = Case("ftz", "t", "logits", np.array([-90.0]), np.array([0.0]))
    inputs = case.inputs("float32")
    exact = reference(inputs, "logits")
    fmt = float_format("float32")
    expected = float(np.float32(float(mpmath.exp(-90))))
    jax_loss = _compute("array_api.jax", case, "float32").loss
    assert jax_loss.tolist() == [0.0], f"out={jax_loss}, but XLA's CPU flush-to-zero should give 0 (exact {expected})"
    assert judge(jax_loss, *exact.loss("none"), fmt, None).status == "fail"
    numpy_loss = _compute("array_api.numpy", case, "float32").loss
    assert judge(numpy_loss, *exact.loss("none"), fmt, None).status == "pass", f"out={numpy_loss}"


@pytest.mark.parametrize(("impl", "dtype"), [("array_api.strict", "float16"), ("array_api.strict_probs", "bfloat16"),
                                             ("array_api.numpy", "bfloat16"), ("array_api.dask", "bfloat16")])
def test_dtypes_a_namespace_lacks_are_unsupported(impl: str, dtype: str) -> None:
    case = Case("seed", "t", "logits" if not impl.endswith("_probs") else "probs", np.array([0.25]), np.array([1.0]))
    with pytest.raises(Unsupported, match=f"has no {dtype}"):
        _compute(impl, case, dtype)


def test_dask_reduces_over_chunks() -> None:
    """Each axis in two chunks: a (4, 4) case is 2 × 2 blocks, and its mean is still the worked example's."""
    adapter = _adapter()
    adapter._import(NAMESPACES["dask"])
    assert NAMESPACES["dask"].array(np.zeros((4, 4))).numblocks == (2, 2)
    assert NAMESPACES["dask"].array(np.zeros((5,))).chunks == ((3, 2),)


@pytest.mark.parametrize("space", ["numpy", "torch"])
def test_repro_source_runs_standalone(space: str) -> None:
    """The reproducer's `run` alone (its imports, NumPy's cast and the formula) gives the worked example's first
    row: x = 0, y = 0 four times, log 2 each, and ∂/∂x = 1/2 where there is autodiff."""
    adapter = _adapter()
    source = adapter.repro_source(adapter.implementation(f"array_api.{space}"), "eager")
    namespace = {"np": np, "DTYPE": "float32", "Y_DTYPE": "float32", "W_DTYPE": "float32", "REDUCTION": "none"}
    exec(compile("import numpy as np\n" + source, "repro", "exec"), namespace)
    loss, grad = namespace["run"](np.zeros(4), np.zeros(4), None, None)
    np.testing.assert_allclose(loss, np.log(2), rtol=2.0**-23)
    assert (grad is None) == (space == "numpy")
    if grad is not None:
        assert grad.tolist() == [0.5] * 4
