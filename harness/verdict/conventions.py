"""Documented conventions: predicting what a framework's documented behaviour gives, to tell it from a bug.

The conventions themselves (which implementation, which quantity, the parameters, the reason and a link) are
data in `implementations/conventions.toml`; this module computes the value each kind of convention predicts.
A row is `deviation` only when the framework's output matches that prediction within the pass tolerance.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from cases import CaseInputs, FloatFormat, float_format
from harness.verdict.oracle import reference

__all__ = ["Convention", "Prediction", "convention_use", "load_conventions", "predict"]

Prediction = tuple[np.ndarray, np.ndarray]  # (hi, lo) of the predicted value, shaped like the result
_KINDS: dict[str, Callable[..., Prediction | None]] = {}


@dataclass(frozen=True, slots=True)
class Convention:
    id: str
    impls: tuple[str, ...]
    quantity: str  # "loss", "grad" or "both"
    kind: str
    reason: str
    link: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, impl: str, quantity: str) -> bool:
        return impl in self.impls and self.quantity in (quantity, "both")


def convention_use(conventions: Sequence[Convention], rows: pd.DataFrame) -> tuple[dict[str, int], list[str]]:
    """How many rows of an audit table each convention explained (its `deviation` column), and the stale ones:
    conventions whose implementations ran but that explained no row. Counted over the table, so that a resumed
    run counts the rows of both sessions."""
    matched = {str(k): int(v) for k, v in rows.loc[rows["deviation"] != "", "deviation"].value_counts().items()}
    ran = set(rows["impl"])
    return matched, [c.id for c in conventions if set(c.impls) & ran and not matched.get(c.id)]


def load_conventions(text: str | None = None) -> list[Convention]:
    """Parse the conventions file (or `text`); a malformed entry raises ValueError naming it."""
    if text is None:
        text = resources.files("implementations").joinpath("conventions.toml").read_text(encoding="utf-8")
    out = []
    for index, entry in enumerate(tomllib.loads(text).get("convention", [])):
        try:
            known = {"id", "impls", "quantity", "kind", "reason", "link"}
            convention = Convention(
                id=entry["id"], impls=tuple(entry["impls"]), quantity=entry["quantity"], kind=entry["kind"],
                reason=entry["reason"], link=entry["link"],
                parameters={k: v for k, v in entry.items() if k not in known},
            )
        except KeyError as exc:
            raise ValueError(f"conventions file: entry #{index} lacks {exc.args[0]!r}") from None
        if convention.kind not in _KINDS:
            raise ValueError(f"conventions file: {convention.id!r} has unknown kind {convention.kind!r}; "
                             f"known: {', '.join(_KINDS)}")
        if convention.quantity not in ("loss", "grad", "both"):
            raise ValueError(f"conventions file: {convention.id!r}: quantity must be loss, grad or both")
        out.append(convention)
    return out


def _kind(name: str) -> Callable[[Callable[..., Prediction | None]], Callable[..., Prediction | None]]:
    def register(function: Callable[..., Prediction | None]) -> Callable[..., Prediction | None]:
        _KINDS[name] = function
        return function

    return register


def _broadcast(inputs: CaseInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    shape = inputs.x.shape

    def flat(value: np.ndarray | None) -> np.ndarray:
        return np.ones(shape) if value is None else np.broadcast_to(value.astype(np.float64), shape)

    return (inputs.x.astype(np.float64), inputs.y.astype(np.float64), flat(inputs.weight), flat(inputs.pos_weight))


def _reduce(per_element: np.ndarray, reduction: str, quantity: str) -> Prediction:
    """Apply the reduction to predicted per-element values (gradients: scaled by 1/n for mean)."""
    n = per_element.size
    if quantity == "grad" or reduction == "none":
        values = per_element / n if (quantity == "grad" and reduction == "mean") else per_element
        return values, np.zeros_like(values)
    finite = np.isfinite(per_element).all()
    total = math.fsum(per_element.ravel().tolist()) if finite else float(np.sum(per_element))
    value = total / n if reduction == "mean" else total
    return np.array(value), np.array(0.0)


def _coefficient_times(coefficient: np.ndarray, value: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(coefficient == 0, 0.0, coefficient * value)


@_kind("log_clamp")
def _log_clamp(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, floor: float,
               **_: Any) -> Prediction | None:
    """l = −w[p·y·max(log q, floor) + (1 − y)·max(log(1 − q), floor)]."""
    if input_form != "probs" or quantity != "loss":
        return None
    q, y, w, p = _broadcast(inputs)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q, log_1mq = np.maximum(np.log(q), floor), np.maximum(np.log1p(-q), floor)
        per_element = -w * (_coefficient_times(p * y, log_q) + _coefficient_times(1 - y, log_1mq))
    return _reduce(per_element, reduction, quantity)


@_kind("grad_epsilon")
def _grad_epsilon(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, epsilon: float,
                  epsilon_dtype: str = "float64", **_: Any) -> Prediction | None:
    """dl/dq = w·(q − y) / max(q(1 − q), epsilon), epsilon as stored in `epsilon_dtype`."""
    if input_form != "probs" or quantity != "grad":
        return None
    epsilon = float(np.asarray(epsilon).astype(float_format(epsilon_dtype).numpy_dtype))
    q, y, w, _p = _broadcast(inputs)
    per_element = w * (q - y) / np.maximum(q * (1 - q), epsilon)
    return _reduce(per_element, reduction, quantity)


@_kind("prob_clip")
def _prob_clip(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, epsilon: float,
               **_: Any) -> Prediction | None:
    """q clipped to [ε, 1 − ε] (both rounded to the dtype, as the framework does), then
    l = −w[y·log q_c + (1 − y)·log(1 − q_c)] in IEEE arithmetic; the gradient is zero outside the clip."""
    if input_form != "probs":
        return None
    fmt: FloatFormat = float_format(inputs.dtype)
    low = float(np.asarray(epsilon).astype(fmt.numpy_dtype))
    high = float(np.asarray(1.0 - epsilon).astype(fmt.numpy_dtype))
    q, y, w, _p = _broadcast(inputs)
    clipped = np.clip(q, low, high)
    with np.errstate(divide="ignore", invalid="ignore"):
        if quantity == "loss":
            per_element = -w * (y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
        else:
            inside = (q >= low) & (q <= high)
            per_element = np.where(inside, w * (-y / clipped + (1 - y) / (1 - clipped)), 0.0)
    return _reduce(per_element, reduction, quantity)


@_kind("flush_to_zero")
def _flush_to_zero(inputs: CaseInputs, input_form: str, reduction: str, quantity: str,
                   **_: Any) -> Prediction | None:
    """The exact value of the inputs with subnormals read as zero, with subnormal results flushed to zero."""
    fmt = float_format(inputs.dtype)

    def flush(values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.where(np.abs(values) < fmt.smallest_normal, np.copysign(0.0, values), values)

    def flush_input(value: np.ndarray | None) -> np.ndarray | None:
        if value is None or value.dtype.name != inputs.dtype:
            return value
        return flush(value.astype(np.float64)).astype(value.dtype)

    originals = (inputs.x, inputs.y, inputs.weight, inputs.pos_weight)
    changed = any(v is not None and v.dtype.name == inputs.dtype and bool(np.any(
        (v.astype(np.float64) != 0) & (np.abs(v.astype(np.float64)) < fmt.smallest_normal))) for v in originals)
    flushed = CaseInputs(inputs.dtype, *(flush_input(v) for v in originals)) if changed else inputs  # type: ignore[arg-type]
    exact = reference(flushed, input_form)
    if exact.undefined is not None:
        return None
    if quantity == "grad":
        hi, _lo, _band = exact.grad(reduction)
        return flush(hi), np.zeros_like(hi)
    if reduction == "none":
        return flush(exact.loss_hi), np.zeros_like(exact.loss_hi)
    per_element = flush(exact.loss_hi)
    value, _zero = _reduce(per_element, reduction, "loss")
    return flush(value), np.array(0.0)


def predict(convention: Convention, inputs: CaseInputs, input_form: str, reduction: str,
            quantity: str) -> Prediction | None:
    """What `convention` predicts for this result, or None where it has nothing to say."""
    return _KINDS[convention.kind](inputs, input_form, reduction, quantity, **convention.parameters)
