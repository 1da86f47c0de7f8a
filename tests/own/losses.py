"""Losses a user might write, for the tests of `check_loss` and `audit --callable`: naive ones that the extreme
cases break, and stable ones that pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def naive_numpy(x: np.ndarray, y: np.ndarray) -> Any:
    """-(y·log σ(x) + (1 − y)·log(1 − σ(x))), as written on paper."""
    s = 1 / (1 + np.exp(-x))
    return -(y * np.log(s) + (1 - y) * np.log(1 - s))


def _softplus(x: np.ndarray) -> Any:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def stable_numpy(x: np.ndarray, y: np.ndarray) -> Any:
    """y·softplus(−x) + (1 − y)·softplus(x), each term absent where its label weight is 0 (so ±inf logits give
    the exact 0 or inf); integer labels take x's dtype, float labels promote as NumPy does."""
    if x.shape != y.shape:
        raise ValueError(f"x and y shapes differ: {x.shape} and {y.shape}")
    if y.dtype.kind in "biu":
        y = y.astype(x.dtype)
    return np.where(y == 0, 0, y * _softplus(-x)) + np.where(y == 1, 0, (1 - y) * _softplus(x))


def stable_numpy_mean(x: np.ndarray, y: np.ndarray) -> Any:
    return np.mean(stable_numpy(x, y))


def weighted_numpy(x: np.ndarray, y: np.ndarray, weight: Any = None) -> Any:
    loss = stable_numpy(x, y)
    return loss if weight is None else loss * weight


def naive_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return -(y * torch.log(s) + (1 - y) * torch.log(1 - s))


def logsigmoid_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-(y·log σ(x) + (1 − y)·log σ(−x)) with torch's log-sigmoid, each term absent where its label weight is 0."""
    if x.shape != y.shape:
        raise ValueError(f"x and y shapes differ: {x.shape} and {y.shape}")
    if not y.is_floating_point():
        y = y.to(x.dtype)
    log_sigmoid = torch.nn.functional.logsigmoid
    return -(torch.where(y == 0, 0, y * log_sigmoid(x)) + torch.where(y == 1, 0, (1 - y) * log_sigmoid(-x)))


def clamped_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The stable formula with softplus(x) = clamp(x, min=0) + log1p(e^−|x|): right values, but at x = 0 autograd
    takes clamp's derivative as 1 and |x|'s as 0, so the gradient there is 1 − y instead of 0.5 − y."""
    softplus = torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))
    return softplus - x * y


def unsure(x: Any, y: Any) -> Any:
    """Names no module: its framework cannot be told from a module that imports two."""
    return x - x * y


def catch_all(x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
    """Takes its options through **kwargs: a weight arrives so, a reduction never (it returns per element)."""
    loss = stable_numpy(x, y)
    return loss if options.get("weight") is None else loss * options["weight"]


class TorchLoss:
    """A loss as a callable object (as torch.nn modules are)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logsigmoid_torch(x, y)


def forward_only_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A kernel without a backward (a fused op whose autograd is not written yet): its result has no graph."""
    with torch.no_grad():
        return logsigmoid_torch(x, y)
