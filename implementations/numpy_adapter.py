"""NumPy: the harness's own numerically stable BCE, with an analytic gradient.

Computed in the input's precision (float16 and bfloat16 in float32, as NumPy's own float16 ufuncs do, then
rounded once), so its rows show what a careful implementation achieves in each dtype, not a reference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from implementations.base import Adapter, Implementation, Output, Reduction, Unsupported

__all__ = ["NumpyAdapter", "bce_logits", "bce_probs"]

_COMPUTE_DTYPE = {"float64": np.float64, "float32": np.float32, "float16": np.float32, "bfloat16": np.float32}


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and e^x's precision kept for x ≪ 0."""
    with np.errstate(invalid="ignore"):  # inf - inf for x = ±inf is masked below
        return np.where(np.isinf(x) & (x < 0), 0.0, np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) without overflow: 1 / (1 + e^-x) for x ≥ 0, e^x / (1 + e^x) for x < 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _times(coefficient: np.ndarray, value: np.ndarray) -> np.ndarray:
    """coefficient·value with 0·∞ = 0: a term whose coefficient is zero is absent from the loss."""
    with np.errstate(invalid="ignore"):
        return np.where(coefficient == 0, 0.0, coefficient * value)


def bce_logits(x: np.ndarray, y: np.ndarray, pos_weight: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-element loss and d loss / dx from logits.

    l = (1 − y)·softplus(x) + p·y·softplus(−x) (= (1 − y)x + (1 + (p − 1)y)·softplus(−x));
    dl/dx = (1 − y)·σ(x) − p·y·σ(−x). Stable: log σ(x) = −softplus(−x), log(1 − σ(x)) = −softplus(x).
    """
    negative_weight = (1 - y).astype(x.dtype)
    positive_weight = (pos_weight * y).astype(x.dtype)
    loss = _times(negative_weight, _softplus(x)) + _times(positive_weight, _softplus(-x))
    grad = negative_weight * _sigmoid(x) - positive_weight * _sigmoid(-x)
    return loss, grad


def bce_probs(p: np.ndarray, y: np.ndarray, pos_weight: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-element loss and d loss / dp from probabilities.

    l = −[p_w·y·log p + (1 − y)·log1p(−p)], each term absent when its coefficient is 0 (so 0·log 0 = 0);
    dl/dp = −p_w·y / p + (1 − y) / (1 − p), likewise.
    """
    positive_weight = (pos_weight * y).astype(p.dtype)
    negative_weight = (1 - y).astype(p.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -(_times(positive_weight, np.log(p)) + _times(negative_weight, np.log1p(-p)))
        grad = -_times(positive_weight, 1 / p) + _times(negative_weight, 1 / (1 - p))
    return loss, grad


class NumpyAdapter(Adapter):
    framework = "numpy"
    distributions = ("numpy",)
    implementations = (
        Implementation(
            "numpy.logits", "logits",
            api="harness stable formula (1-y)·softplus(x) + y·softplus(-x) in NumPy; analytic gradient",
            api_pos_weight="harness stable formula (1-y)·softplus(x) + p·y·softplus(-x) in NumPy; analytic gradient",
            grad="analytic",
        ),
        Implementation(
            "numpy.probs", "probs",
            api="composed -(y·log(p) + (1-y)·log1p(-p)) in NumPy, 0·log 0 = 0; analytic gradient",
            api_pos_weight="composed -(p·y·log(p) + (1-y)·log1p(-p)) in NumPy, 0·log 0 = 0; analytic gradient",
            grad="analytic",
        ),
    )

    def _load(self, threads: int) -> None:
        pass

    def runtime_version(self) -> str:
        return np.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def compute(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str
    ) -> Output:
        if device != "cpu":
            raise Unsupported(f"numpy runs on the CPU only, not {device!r}")
        x = arrays["x"]
        out_dtype = x.dtype
        work = _COMPUTE_DTYPE.get(out_dtype.name)
        if work is None:
            raise Unsupported(f"numpy adapter has no {out_dtype.name} arithmetic")
        y = arrays["y"]
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape. Received: x.shape={x.shape}, y.shape={y.shape}")
        has_pos_weight = "pos_weight" in arrays
        api = impl.api_for(has_pos_weight)
        xw, yw = x.astype(work), y.astype(work)
        pos_weight: np.ndarray | float = (
            np.broadcast_to(arrays["pos_weight"].astype(work), x.shape) if has_pos_weight else 1.0
        )
        per_element = bce_logits if impl.input_form == "logits" else bce_probs
        loss, grad = per_element(xw, yw, pos_weight)
        if "weight" in arrays:
            weight = np.broadcast_to(arrays["weight"].astype(work), x.shape)
            loss, grad = weight * loss, weight * grad
        if reduction == "sum":
            loss = np.sum(loss, dtype=work)
        elif reduction == "mean":
            count = work(loss.size)
            with np.errstate(invalid="ignore", divide="ignore"):
                loss, grad = np.sum(loss, dtype=work) / count, grad / count
        return Output(
            loss=np.asarray(np.asarray(loss).astype(out_dtype), dtype=np.float64),
            grad=np.asarray(grad.astype(out_dtype), dtype=np.float64),
            out_dtype=out_dtype.name,
            grad_dtype=out_dtype.name,
            api=api,
        )
