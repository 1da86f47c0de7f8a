"""Further derivatives (grad_fwd, grad_y, grad_weight, grad_pos_weight, grad2) of each framework's BCE, and the
implementations that exist for a relation or a context, in this process.

Expected values from first principles, l per element, w = weight, p = pos_weight, softplus(x) = log(1 + eˣ):
logits: dl/dx = w·((1 − y)σ(x) − p·y·σ(−x)); d²l/dx² = w·((1 − y) + p·y)·σ(x)σ(−x); dl/dy = w·(p·softplus(−x) −
softplus(x)); dl/dw = (1 − y)·softplus(x) + p·y·softplus(−x); dl/dp = w·y·softplus(−x).
probabilities q: dl/dq = w·((1 − y)/(1 − q) − y/q); d²l/dq² = w·((1 − y)/(1 − q)² + y/q²); dl/dy = w·(log(1 − q) −
log q); dl/dw = −(y·log q + (1 − y)·log(1 − q)).
L is the reduced loss (the sum of l for `none`): each derivative of L is the per-element one, / n for the mean;
grad_fwd, the forward-mode tangent along ones, is dl/dx per element for `none` and Σ dl/dx (/ n) for mean and sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from implementations import DERIVATIVES, Adapter, Unsupported
from tests.frameworks import ADAPTERS, loaded_adapter

FRAMEWORKS = [name for name in ("torch", "jax", "tensorflow") if name in ADAPTERS]
PROBS = {"torch": "torch.probs", "jax": "jax.probs", "tensorflow": "tensorflow.keras_probs"}
# Interior points (no clip or clamp acts), soft labels: no term cancels another at 1e-12.
X = np.array([0.3, -1.2, 2.0, -0.4])
Y = np.array([0.25, 0.7, 1.0, 0.0])
W = np.array([1.5, 0.5, 2.0, 0.75])
P = np.array([3.0])
RTOL = 1e-12  # float64 autodiff against the formulas above, a few roundings each
# What a framework says it has no derivative for (torch raises "is not differentiable": status "unsupported").
NONE = {
    ("torch.logits", "grad_weight"): "not differentiable with respect to argument 'weight'",
    ("torch.logits", "grad_pos_weight"): "not differentiable with respect to argument 'pos_weight'",
    ("torch.probs", "grad_weight"): "not differentiable with respect to argument 'weight'",
}
SIGMOID_INSIDE = [(name, impl.impl) for name in FRAMEWORKS for impl in ADAPTERS[name].implementations
                  if impl.sigmoid_inside]
SOFTMAX2 = [(name, f"{name}.softmax2") for name in FRAMEWORKS]

_adapter = loaded_adapter


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _per_element_logits() -> dict[str, np.ndarray]:
    p, s = P[0], _sigmoid(X)
    return {
        "grad_fwd": W * ((1 - Y) * s - p * Y * (1 - s)),
        "grad_y": W * (p * np.logaddexp(0, -X) - np.logaddexp(0, X)),
        "grad_weight": (1 - Y) * np.logaddexp(0, X) + p * Y * np.logaddexp(0, -X),
        "grad_pos_weight": W * Y * np.logaddexp(0, -X),
        "grad2": W * ((1 - Y) + p * Y) * s * (1 - s),
    }


def _per_element_probs(q: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "grad_fwd": W * ((1 - Y) / (1 - q) - Y / q),
        "grad_y": W * (np.log1p(-q) - np.log(q)),
        "grad_weight": -(Y * np.log(q) + (1 - Y) * np.log1p(-q)),
        "grad2": W * ((1 - Y) / (1 - q) ** 2 + Y / q**2),
    }


def _torch_probs_grad2(q: np.ndarray) -> np.ndarray:
    """torch's double backward of binary_cross_entropy (FunctionsManual.cpp) adds ε = 1e-12 to q and 1 − q in its
    denominator: w·((1 − y)q² + y(1 − q)²) / ((q + ε)²(1 − q + ε)²), 2e-11 relative from the exact value here."""
    eps = 1e-12
    return W * ((1 - Y) * q**2 + Y * (1 - q) ** 2) / ((q + eps) ** 2 * (1 - q + eps) ** 2)


def _expected(per_element: dict[str, np.ndarray], reduction: str) -> dict[str, np.ndarray]:
    """The derivatives of L from those of l: / n for the mean; pos_weight's, of shape (1,), summed."""
    scale = 1 / X.size if reduction == "mean" else 1.0
    out = {name: scale * values for name, values in per_element.items()}
    if "grad_pos_weight" in out:
        out["grad_pos_weight"] = np.array([out["grad_pos_weight"].sum()])
    if reduction != "none":
        out["grad_fwd"] = np.array(out["grad_fwd"].sum())
    return out


def _arrays(impl: str) -> dict[str, np.ndarray]:
    if impl.endswith("logits"):
        return {"x": X, "y": Y, "weight": W, "pos_weight": P}
    return {"x": _sigmoid(X), "y": Y, "weight": W}


def _derivative_value(adapter: Adapter, impl: str, arrays: dict[str, np.ndarray], reduction: str,
                      name: str) -> np.ndarray:
    out = adapter.compute(adapter.implementation(impl), arrays, reduction, "cpu", derivatives=(name,))
    got = out.derivatives[name]
    assert got.status == "" and got.values is not None, f"{name}: {got.error_type}: {got.message}"
    return got.values


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("form", ["logits", "probs"])
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_every_derivative_equals_first_principles(name: str, form: str, reduction: str) -> None:
    adapter = _adapter(name)
    impl = f"{name}.logits" if form == "logits" else PROBS[name]
    arrays = _arrays(impl)
    per_element = _per_element_logits() if form == "logits" else _per_element_probs(arrays["x"])
    if impl == "torch.probs":
        per_element["grad2"] = _torch_probs_grad2(arrays["x"])
    expected = _expected(per_element, reduction)
    out = adapter.compute(adapter.implementation(impl), arrays, reduction, "cpu",
                          derivatives=DERIVATIVES)
    for quantity in DERIVATIVES:
        got = out.derivatives[quantity]
        if quantity not in expected:  # pos_weight for a probabilities API: there is none to differentiate by
            assert got.status == "unsupported" and "no pos_weight" in got.message, got
        elif (impl, quantity) in NONE:
            assert got.status == "unsupported" and NONE[impl, quantity] in got.message, got
        else:
            assert got.status == "" and got.values is not None, f"{quantity}: {got.error_type}: {got.message}"
            assert got.dtype == "float64" and got.values.shape == expected[quantity].shape, (quantity, got)
            np.testing.assert_allclose(got.values, expected[quantity], rtol=RTOL, atol=0, err_msg=quantity)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_grad2_at_zero_is_a_quarter_and_grad_y_without_pos_weight_is_minus_x(name: str) -> None:
    adapter = _adapter(name)
    zero = {"x": np.zeros(2), "y": np.zeros(2)}
    grad2 = _derivative_value(adapter, f"{name}.logits", zero, "sum", "grad2")
    assert grad2.tolist() == [0.25, 0.25], f"out={grad2}, but should be σ(0)σ(0) = 0.25 exactly"
    grad_y = _derivative_value(adapter, f"{name}.logits", {"x": X, "y": Y}, "sum", "grad_y")
    np.testing.assert_allclose(grad_y, -X, rtol=RTOL, atol=0)  # softplus(−x) − softplus(x) = −x


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_integer_labels_have_no_derivative(name: str) -> None:
    adapter = _adapter(name)
    impl = adapter.implementation(f"{name}.logits")
    arrays = {"x": X, "y": np.array([0, 1, 1, 0], dtype=np.int64)}
    answers = adapter.derivatives(impl, arrays, "sum", "cpu", ("grad_y", "grad_weight"))
    assert isinstance(answers["grad_y"], Unsupported), answers
    assert "int64 labels have no derivative" in str(answers["grad_y"])
    assert isinstance(answers["grad_weight"], Unsupported) and "has no weight" in str(answers["grad_weight"])


@pytest.mark.parametrize("quantity", DERIVATIVES)
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_derivative_reproducer_computes_what_the_adapter_does(name: str, quantity: str) -> None:
    """`repro_derivative_source`'s `run`, executed here, gives the adapter's derivative to the bit."""
    adapter = _adapter(name)
    impl, arrays = f"{name}.lse_formula", _arrays(f"{name}.logits")  # an API that answers every derivative
    expected = _derivative_value(adapter, impl, arrays, "mean", quantity)
    namespace: dict[str, Any] = {"Any": Any, "Callable": Callable, "np": np, "DTYPE": "float64",
                                 "Y_DTYPE": "float64", "W_DTYPE": "float64", "REDUCTION": "mean"}
    exec(adapter.repro_derivative_source(adapter.implementation(impl), quantity), namespace)
    loss, got = namespace["run"](X, Y, W, P)
    assert loss.dtype == got.dtype == np.float64 and loss.shape == ()
    assert got.tobytes() == expected.tobytes(), f"out={got}, but should be {expected}"
    with pytest.raises(Unsupported, match="unknown derivative 'grad3'"):
        adapter.repro_derivative_source(adapter.implementation(impl), "grad3")


@pytest.mark.parametrize(("name", "impl"), SOFTMAX2, ids=[impl for _, impl in SOFTMAX2])
def test_softmax2_is_bce(name: str, impl: str) -> None:
    """Two-class softmax cross-entropy on [0, x] with targets [1 − y, y] is BCE (log 2 at x = 0), and its gradient
    flows through the stack: w·(σ(x) − y)."""
    adapter = _adapter(name)
    arrays = {"x": np.append(X, 0.0), "y": np.append(Y, 0.25), "weight": np.append(W, 1.0)}
    out = adapter.compute(adapter.implementation(impl), arrays, "none", "cpu")
    x, y, w = arrays["x"], arrays["y"], arrays["weight"]
    bce = w * ((1 - y) * np.logaddexp(0, x) + y * np.logaddexp(0, -x))
    np.testing.assert_allclose(out.loss, bce, rtol=RTOL, atol=0)
    assert abs(out.loss[-1] - math.log(2)) <= 2.0**-53  # x = 0: log 2 whatever the label
    np.testing.assert_allclose(out.grad, w * (_sigmoid(x) - y), rtol=RTOL, atol=0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_focal_at_gamma_zero_is_optax_bce_bitwise(dtype: str) -> None:
    """Measured on optax 0.2.8: the loss is bitwise equal in eager and jit (its factor exp(0·…) is exactly 1), the
    gradient in eager; jit's fused gradient differs by up to hundreds of ULPs where σ(x) ≈ y (cancellation)."""
    adapter = _adapter("jax")
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(0, 4, 64).astype(dtype), "y": rng.uniform(0, 1, 64).astype(dtype)}
    for mode in adapter.modes:
        focal = adapter.compute(adapter.implementation("jax.focal"), arrays, "none", "cpu", mode)
        bce = adapter.compute(adapter.implementation("jax.logits"), arrays, "none", "cpu", mode)
        assert focal.loss.tobytes() == bce.loss.tobytes(), mode
        if mode == "eager":
            assert focal.grad is not None and bce.grad is not None and focal.grad.tobytes() == bce.grad.tobytes()


@pytest.mark.parametrize(("name", "impl"), SIGMOID_INSIDE, ids=[impl for _, impl in SIGMOID_INSIDE])
def test_sigmoid_inside_runs_in_every_mode(name: str, impl: str) -> None:
    """BCE of σ(x) at interior points, in eager and each compiled mode (which proves it ran compiled), and
    the gradient with respect to x through σ: σ(x) − y."""
    adapter = _adapter(name)
    implementation = adapter.implementation(impl)
    assert implementation.input_form == "logits" and implementation.runs_on == "sigmoid"
    arrays = {"x": X, "y": Y}
    dtype = implementation.compute_dtype or "float64"
    rtol = 1e-6 if dtype == "float32" else RTOL
    for mode in adapter.modes:
        out = adapter.compute(implementation, arrays, "none", "cpu", mode)
        assert out.out_dtype == dtype and (mode == "eager") == (out.compiled == ""), (mode, out.compiled)
        np.testing.assert_allclose(out.loss, (1 - Y) * np.logaddexp(0, X) + Y * np.logaddexp(0, -X), rtol=rtol)
        np.testing.assert_allclose(out.grad, _sigmoid(X) - Y, rtol=rtol, err_msg=mode)


@pytest.mark.parametrize("impl", ["tensorflow.keras_probs_of_sigmoid", "tensorflow.keras_class_probs_of_sigmoid"])
def test_keras_unwraps_a_graph_sigmoid_to_logits(impl: str) -> None:
    """float32, x = 20, y = 0: σ(20) rounds to 1. Eager Keras clips it to fl32(1 − 1e-7) = 1 − 2⁻²³ and gives
    −log 2⁻²³ = 23·log 2 = 15.94…, with a zero gradient; inside tf.function (and jit_compile) Keras's `_get_logits`
    sees the Sigmoid op, takes its input as logits and gives the exact 20 with gradient 1 (keras 3.15)."""
    adapter = _adapter("tensorflow")
    implementation = adapter.implementation(impl)
    arrays = {"x": np.array([20.0], dtype=np.float32), "y": np.array([0.0], dtype=np.float32)}
    eager = adapter.compute(implementation, arrays, "none", "cpu")
    assert float(eager.loss[0]) == float(np.float32(23 * math.log(2))) and eager.grad is not None
    assert eager.grad.tolist() == [0.0]
    for mode in adapter.modes[1:]:
        graph = adapter.compute(implementation, arrays, "none", "cpu", mode)
        assert graph.loss.tolist() == [20.0] and graph.grad is not None and graph.grad.tolist() == [1.0], mode


def test_keras_class_casting_float64_hides_the_sigmoid_from_graph_mode() -> None:
    """The loss class converts float64 to its float32 first: the op it sees is a Cast, not the Sigmoid, so the
    clip acts in graph mode too (the functional API, given float64, unwraps: 20 + log1p(e⁻²⁰))."""
    adapter = _adapter("tensorflow")
    arrays = {"x": np.array([20.0]), "y": np.array([0.0])}
    for mode in adapter.modes[1:]:
        functional = adapter.compute(adapter.implementation("tensorflow.keras_probs_of_sigmoid"), arrays, "none",
                                     "cpu", mode)
        np.testing.assert_allclose(functional.loss, [20 + math.log1p(math.exp(-20))], rtol=RTOL)
        loss_class = adapter.compute(adapter.implementation("tensorflow.keras_class_probs_of_sigmoid"), arrays,
                                     "none", "cpu", mode)
        assert float(loss_class.loss[0]) == float(np.float32(23 * math.log(2))), mode
