"""NumPy: the harness's own numerically stable BCE, the probabilities form, and the worked example's formula,
each with an analytic gradient.

The stable forms compute in the input's precision (float16 and bfloat16 in float32, as NumPy's own float16
ufuncs do, then rounded once), so their rows show what a careful implementation achieves in each dtype, not a
reference. The worked example runs op by op in the input dtype. The module-level functions are what runs, and
their source is what a reproducer prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from implementations.base import Adapter, Direction, Implementation, Reduction, Result, Unsupported, source_of

__all__ = ["REPRO_CAST", "NumpyAdapter", "bce_logits", "bce_probs", "worked_example"]

COMPUTE_DTYPE = {"float64": "float64", "float32": "float32", "float16": "float32", "bfloat16": "float32"}


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and e^x's precision kept for x ≪ 0."""
    with np.errstate(invalid="ignore"):  # inf - inf for x = ±inf is masked below
        return np.where(np.isinf(x) & (x < 0), 0.0, np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) without overflow: 1 / (1 + e^-x) for x ≥ 0, e^x / (1 + e^x) for x < 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def times(coefficient: np.ndarray, value: np.ndarray) -> np.ndarray:
    """coefficient·value with 0·∞ = 0: a label term whose coefficient is zero is absent from the loss."""
    with np.errstate(invalid="ignore"):
        return np.where(coefficient == 0, 0.0, coefficient * value)


def bce_logits(x: np.ndarray, y: np.ndarray, pos_weight: Any = 1.0, with_grad: bool = True) -> tuple[Any, Any]:
    """Per-element loss and d loss / dx (None without `with_grad`) from logits.

    l = (1 − y)·softplus(x) + p·y·softplus(−x) (= (1 − y)x + (1 + (p − 1)y)·softplus(−x));
    dl/dx = (1 − y)·σ(x) − p·y·σ(−x). Stable: log σ(x) = −softplus(−x), log(1 − σ(x)) = −softplus(x).
    """
    negative_weight = (1 - y).astype(x.dtype)
    positive_weight = (pos_weight * y).astype(x.dtype)
    loss = times(negative_weight, softplus(x)) + times(positive_weight, softplus(-x))
    grad = negative_weight * sigmoid(x) - positive_weight * sigmoid(-x) if with_grad else None
    return loss, grad


def bce_probs(p: np.ndarray, y: np.ndarray, pos_weight: Any = 1.0, with_grad: bool = True) -> tuple[Any, Any]:
    """Per-element loss and d loss / dp (None without `with_grad`) from probabilities.

    l = −[p_w·y·log p + (1 − y)·log1p(−p)], each term absent when its coefficient is 0 (so 0·log 0 = 0);
    dl/dp = −p_w·y / p + (1 − y) / (1 − p), likewise.
    """
    positive_weight = (pos_weight * y).astype(p.dtype)
    negative_weight = (1 - y).astype(p.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -(times(positive_weight, np.log(p)) + times(negative_weight, np.log1p(-p)))
        grad = -times(positive_weight, 1 / p) + times(negative_weight, 1 / (1 - p)) if with_grad else None
    return loss, grad


def worked_example(x: np.ndarray, y: np.ndarray, pos_weight: Any = None, with_grad: bool = True) -> tuple[Any, Any]:
    """The original worked example's log-sum-exp formula, op by op in x's own dtype, with its analytic gradient
    (None without `with_grad`).

    l = x − x·y + lw·(max_val + log(e^−max_val + e^(−x−max_val))), max_val = max(−x, 0), lw = 1 + (p − 1)·y;
    dl/dx = 1 − y − lw·σ(−x), with σ(−x) = e^(−x−max_val) / (e^−max_val + e^(−x−max_val)).
    """
    if y.dtype.kind in "biu":  # integer and bool labels take x's dtype; float labels promote as NumPy does
        y = y.astype(x.dtype)
    x = x.astype(np.result_type(x.dtype, y.dtype))
    one = x.dtype.type(1)
    max_val = np.maximum(-x, x.dtype.type(0))
    low, high = np.exp(-max_val), np.exp(-x - max_val)
    log_weight = one if pos_weight is None else one + (np.asarray(pos_weight).astype(x.dtype) - one) * y
    with np.errstate(invalid="ignore", over="ignore"):
        loss = x - x * y + log_weight * (max_val + np.log(low + high))
        grad = one - y - log_weight * (high / (low + high)) if with_grad else None
    return loss, grad


def stable(per_element: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Callable[..., tuple[Any, Any]]:
    """The stable forms: per-element loss and gradient in the compute dtype, weighted, reduced, rounded once."""

    def loss_and_grad(x: np.ndarray, y: np.ndarray, reduction: str, weight: Any = None,
                      pos_weight: Any = None, with_grad: bool = True) -> tuple[Any, Any]:
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape. Received: x.shape={x.shape}, y.shape={y.shape}")
        # float labels promote as NumPy does (float32 x with float64 y gives float64); others take x's dtype
        out_dtype = np.result_type(x.dtype, y.dtype) if y.dtype.kind not in "biu" else x.dtype
        work = np.dtype(COMPUTE_DTYPE[out_dtype.name])
        p = 1.0 if pos_weight is None else np.broadcast_to(np.asarray(pos_weight).astype(work), x.shape)
        loss, grad = per_element(x.astype(work), y.astype(work), p, with_grad)
        grad = np.zeros(0) if grad is None else grad  # forward only: an empty stand-in, dropped at the end
        if weight is not None:
            w = np.broadcast_to(np.asarray(weight).astype(work), x.shape)
            loss, grad = w * loss, w * grad if with_grad else grad
        with np.errstate(invalid="ignore", divide="ignore"):
            if reduction == "mean":
                count = work.type(loss.size)
                loss, grad = np.sum(loss, dtype=work) / count, grad / count
            elif reduction == "sum":
                loss = np.sum(loss, dtype=work)
        # the gradient has the dtype of what it differentiates
        return np.asarray(loss).astype(out_dtype), np.asarray(grad).astype(x.dtype) if with_grad else None

    return loss_and_grad


def mean_gradient(grad: np.ndarray, n: int) -> np.ndarray:
    """d(mean)/dx = grad / n, rounded once to the gradient's dtype (never n held in it: float16(n) is inf from
    n = 65520 on, and bfloat16 holds 1e5 as 99 840)."""
    return (grad.astype(np.float64) / max(n, 1)).astype(grad.dtype)


def lse_loss_and_grad(x: np.ndarray, y: np.ndarray, reduction: str, weight: Any = None,
                      pos_weight: Any = None, with_grad: bool = True) -> tuple[Any, Any]:
    """The worked example, weighted, then np.mean / np.sum."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape. Received: x.shape={x.shape}, y.shape={y.shape}")
    loss, grad = worked_example(x, y, pos_weight, with_grad)
    grad = np.zeros(0, dtype=loss.dtype) if grad is None else grad  # forward only: a stand-in, dropped at the end
    if weight is not None:
        w = np.broadcast_to(np.asarray(weight).astype(loss.dtype), x.shape)
        loss, grad = loss * w, grad * w if with_grad else grad
    with np.errstate(invalid="ignore", divide="ignore"):
        if reduction == "mean":
            loss, grad = np.mean(loss), mean_gradient(grad, loss.size)
        elif reduction == "sum":
            loss = np.sum(loss)
    return np.asarray(loss), np.broadcast_to(grad, x.shape).astype(x.dtype) if with_grad else None


numpy_logits = stable(bce_logits)
numpy_probs = stable(bce_probs)
_FUNCTIONS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "numpy.logits": numpy_logits, "numpy.probs": numpy_probs, "numpy.lse_formula": lse_loss_and_grad,
}
_SOURCES: dict[str, tuple[Callable[..., Any], ...]] = {
    "numpy.logits": (softplus, sigmoid, times, bce_logits, stable),
    "numpy.probs": (times, bce_probs, stable),
    "numpy.lse_formula": (worked_example, mean_gradient, lse_loss_and_grad),
}
_ENTRY = {"numpy.logits": "stable(bce_logits)", "numpy.probs": "stable(bce_probs)",
          "numpy.lse_formula": "lse_loss_and_grad"}
# a reproducer's arrays: the script's float64 values, exact in the dtype named, as NumPy arrays of that dtype
REPRO_CAST = """DTYPES = {'float64': np.float64, 'float32': np.float32, 'float16': np.float16, 'int64': np.int64,
          'bool': np.bool_}
if 'bfloat16' in (DTYPE, Y_DTYPE, W_DTYPE):
    import ml_dtypes
    DTYPES['bfloat16'] = ml_dtypes.bfloat16


def cast(values, name):
    return None if values is None else np.asarray(values, dtype=np.float64).astype(DTYPES.get(name, name))

"""


class NumpyAdapter(Adapter):
    framework = "numpy"
    distributions = ("numpy",)
    release_pages: ClassVar[Mapping[str, str]] = {"numpy": "https://numpy.org/doc/stable/release/{version}-notes.html"}
    autodiff = False  # its own implementations' gradients are analytic formulas of ours
    implementations = (
        Implementation(
            "numpy.logits", "logits",
            api="harness stable formula (1-y)·softplus(x) + y·softplus(-x) in NumPy; analytic gradient",
            api_pos_weight="harness stable formula (1-y)·softplus(x) + p·y·softplus(-x) in NumPy; analytic gradient",
            formula=True,
        ),
        Implementation(
            "numpy.lse_formula", "logits",
            api="worked example in NumPy, in the input dtype: max_val = np.maximum(-x, 0); x - x·y + max_val + "
                "log(exp(-max_val) + exp(-x - max_val)); × weight; np.mean / np.sum; analytic gradient",
            api_pos_weight="worked example in NumPy, in the input dtype: lw = 1 + (p - 1)·y; x - x·y + "
                           "lw·(log(exp(-max_val) + exp(-x - max_val)) + max_val); × weight; np.mean / np.sum; "
                           "analytic gradient",
            formula=True,
        ),
        Implementation(
            "numpy.probs", "probs",
            api="composed -(y·log(p) + (1-y)·log1p(-p)) in NumPy, 0·log 0 = 0; analytic gradient",
            api_pos_weight="composed -(p·y·log(p) + (1-y)·log1p(-p)) in NumPy, 0·log 0 = 0; analytic gradient",
            formula=True, same_as="numpy.logits", relation="probs_logits",
        ),
    )

    def _load(self, threads: int) -> None:
        pass

    def use_here(self) -> None:
        pass

    def runtime_version(self) -> str:
        return np.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def _device(self, device: str, x: np.ndarray) -> None:
        if device != "cpu":
            raise Unsupported(f"numpy runs on the CPU only, not {device!r}")
        if x.dtype.name not in COMPUTE_DTYPE:
            raise Unsupported(f"numpy adapter has no {x.dtype.name} arithmetic")

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        self._device(device, arrays["x"])
        options = {name: value for name, value in arrays.items() if name not in ("x", "y")}
        return Result(*_FUNCTIONS[impl.impl](arrays["x"], arrays["y"], reduction, **options))

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        """NumPy has no autodiff: the loss only."""
        self._device(device, arrays["x"])
        options = {name: value for name, value in arrays.items() if name not in ("x", "y")}
        return Result(function(arrays["x"], arrays["y"], reduction, **options), None)

    @staticmethod
    def to_numpy(values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return np.asarray(values).dtype.name

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        self._device(device, arrays["x"])
        x, y = arrays["x"], arrays["y"]
        function, with_grad = _FUNCTIONS[impl.impl], direction == "forward_backward"
        return lambda: function(x, y, "mean", with_grad=with_grad)

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        if device != "cpu":
            return None
        buffer = np.ones(nbytes // 4, dtype=np.float32)
        return buffer.sum

    def repro_source(self, impl: Implementation, mode: str) -> str:
        driver = f'''
def run(x, y, weight, pos_weight):
    loss, grad = {_ENTRY[impl.impl]}(cast(x, DTYPE), cast(y, Y_DTYPE), REDUCTION, weight=cast(weight, W_DTYPE),
                                      pos_weight=cast(pos_weight, W_DTYPE))
    return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)
'''
        return "COMPUTE_DTYPE = " + repr(COMPUTE_DTYPE) + "\n" + REPRO_CAST + source_of(*_SOURCES[impl.impl]) + driver
