"""Documented conventions: predicting what a framework's documented behaviour gives, to tell it from a bug.

The conventions themselves (which implementation, which quantity, the dtypes its mechanism acts in, the
parameters, the reason and a link) are data in `implementations/conventions.toml`; this module computes the
value each kind of convention predicts, the way the framework computes it: in the dtype it computes in (the
input's, or the implementation's own `compute_dtype`), operation by operation where that changes the value.
A row is `deviation` only when the framework's output matches that prediction within the pass tolerance.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

import mpmath
import numpy as np
import pandas as pd

from cases import DTYPES, CaseInputs, float_format
from harness.verdict.domain import shape_problem
from harness.verdict.oracle import reference

__all__ = ["Convention", "Prediction", "convention_use", "load_conventions", "predict"]


class Prediction(NamedTuple):
    """The value a convention predicts, as a double-double (hi + lo) shaped like the result, and where its
    mechanism acts (`acting`): only there may it account for an output."""

    hi: np.ndarray
    lo: np.ndarray
    acting: np.ndarray


_KINDS: dict[str, Callable[..., Prediction | None]] = {}


@dataclass(frozen=True, slots=True)
class Convention:
    id: str
    impls: tuple[str, ...]
    quantity: str  # "loss", "grad" or "both"
    kind: str
    reason: str
    link: str
    dtypes: tuple[str, ...] = ()  # the dtypes its mechanism acts in (empty: every dtype)
    parameters: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, impl: str, quantity: str, dtype: str) -> bool:
        return (impl in self.impls and self.quantity in (quantity, "both")
                and (not self.dtypes or dtype in self.dtypes))


def convention_use(conventions: Sequence[Convention], rows: pd.DataFrame,
                   compute_dtypes: Mapping[str, str | None] | None = None) -> tuple[dict[str, int], list[str]]:
    """How many rows of an audit table each convention explained (its `deviation` column), and the stale ones:
    conventions that could have applied to rows that ran (their implementations, in a dtype their mechanism acts
    in: the implementation's `compute_dtypes` entry, else the row's) but that explained no row. Counted over the
    table, so that a resumed run counts the rows of both sessions."""
    matched = {str(k): int(v) for k, v in rows.loc[rows["deviation"] != "", "deviation"].value_counts().items()}
    computes = compute_dtypes or {}
    ran = {(impl, computes.get(impl) or dtype) for impl, dtype in zip(rows["impl"], rows["dtype"], strict=True)}
    return matched, [c.id for c in conventions if not matched.get(c.id)
                     and any(impl in c.impls and (not c.dtypes or dtype in c.dtypes) for impl, dtype in ran)]


def load_conventions(text: str | None = None) -> list[Convention]:
    """Parse the conventions file (or `text`); a malformed entry raises ValueError naming it."""
    if text is None:
        text = resources.files("implementations").joinpath("conventions.toml").read_text(encoding="utf-8")
    out = []
    for index, entry in enumerate(tomllib.loads(text).get("convention", [])):
        try:
            known = {"id", "impls", "quantity", "kind", "reason", "link", "dtypes"}
            convention = Convention(
                id=entry["id"], impls=tuple(entry["impls"]), quantity=entry["quantity"], kind=entry["kind"],
                reason=entry["reason"], link=entry["link"], dtypes=tuple(entry.get("dtypes", ())),
                parameters={k: v for k, v in entry.items() if k not in known},
            )
        except KeyError as exc:
            raise ValueError(f"conventions file: entry #{index} lacks {exc.args[0]!r}") from None
        if convention.kind not in _KINDS:
            raise ValueError(f"conventions file: {convention.id!r} has unknown kind {convention.kind!r}; "
                             f"known: {', '.join(_KINDS)}")
        if convention.quantity not in ("loss", "grad", "both"):
            raise ValueError(f"conventions file: {convention.id!r}: quantity must be loss, grad or both")
        if "compute_dtype" in convention.parameters:
            raise ValueError(f"conventions file: {convention.id!r}: compute_dtype is the implementation's "
                             "(Implementation.compute_dtype), not a convention's parameter")
        if unknown := [name for name in convention.dtypes if name not in DTYPES]:
            raise ValueError(f"conventions file: {convention.id!r} has unknown dtype {unknown[0]!r}; "
                             f"known: {', '.join(DTYPES)}")
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


def _reduce(per_element: np.ndarray, reduction: str, quantity: str, acting: np.ndarray,
            exact: np.ndarray | None = None) -> Prediction:
    """Apply the reduction to predicted per-element values (gradients: scaled by 1/n for mean); a reduced loss is
    acted on where any of its elements is. With `exact` (the exact per-element values), the prediction takes the
    convention's value only where its mechanism acts and the exact one elsewhere, so that a reduced prediction
    differs from the exact value by what the mechanism does and nothing else (Keras's log(1 − p) at p = 1e-4 is
    no part of its clip)."""
    if exact is not None:
        per_element = np.where(acting, per_element, exact)
    n = per_element.size
    if quantity == "grad" or reduction == "none":
        values = per_element / n if (quantity == "grad" and reduction == "mean") else per_element
        return Prediction(values, np.zeros_like(values), acting)
    total, mean = _sum_and_mean(per_element)
    value = total if reduction == "sum" else mean
    return Prediction(np.array(value), np.array(0.0), np.array(bool(acting.any())))


def _sum_and_mean(values: np.ndarray) -> tuple[float, float]:
    """The exact sum and mean of float64 values, each rounded once (a sum past float64's largest number is inf,
    its mean may still be finite; the mean of nothing is 0/0)."""
    n = values.size
    if not np.isfinite(values).all():
        total = float(np.sum(values))
        return total, total / n if n else math.nan
    try:
        total = math.fsum(values.ravel().tolist())
        return total, total / n if n else math.nan
    except OverflowError:  # partials past the largest float64: exactly, in enough bits for any float64 sum
        with mpmath.workprec(4096):
            exact = mpmath.fsum(mpmath.mpf(v) for v in values.ravel().tolist())
            return float(exact), float(exact / n)


def _exact(inputs: CaseInputs, input_form: str, quantity: str) -> np.ndarray:
    """The exact per-element loss, or gradient of the sum, as float64 (the reference's high parts)."""
    exact = reference(inputs, input_form)
    return exact.loss_hi if quantity == "loss" else exact.grad_hi


def _coefficient_times(coefficient: np.ndarray, value: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(coefficient == 0, 0.0, coefficient * value)


@_kind("log_clamp")
def _log_clamp(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, floor: float,
               **_: Any) -> Prediction | None:
    """l = −w[p·y·max(log q, floor) + (1 − y)·max(log(1 − q), floor)]; acts where a present term is clamped."""
    if input_form != "probs" or quantity != "loss":
        return None
    q, y, w, p = _broadcast(inputs)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw_q, raw_1mq = np.log(q), np.log1p(-q)
        log_q, log_1mq = np.maximum(raw_q, floor), np.maximum(raw_1mq, floor)
        per_element = -w * (_coefficient_times(p * y, log_q) + _coefficient_times(1 - y, log_1mq))
    acting = ((p * y != 0) & (raw_q < floor)) | ((1 - y != 0) & (raw_1mq < floor))
    return _reduce(per_element, reduction, quantity, acting, _exact(inputs, input_form, quantity))


@_kind("grad_epsilon")
def _grad_epsilon(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, epsilon: float,
                  epsilon_dtype: str = "float64", **_: Any) -> Prediction | None:
    """dl/dq = w·(q − y) / max(q(1 − q), epsilon), epsilon as stored in `epsilon_dtype`; acts where
    q(1 − q) < epsilon."""
    if input_form != "probs" or quantity != "grad":
        return None
    epsilon = float(np.asarray(epsilon).astype(float_format(epsilon_dtype).numpy_dtype))
    q, y, w, _p = _broadcast(inputs)
    per_element = w * (q - y) / np.maximum(q * (1 - q), epsilon)
    return _reduce(per_element, reduction, quantity, q * (1 - q) < epsilon, _exact(inputs, input_form, quantity))


@_kind("prob_clip")
def _prob_clip(inputs: CaseInputs, input_form: str, reduction: str, quantity: str, *, epsilon: float,
               log1p: bool = False, floor: float | None = None, compute_dtype: str | None = None,
               **_: Any) -> Prediction | None:
    """q clipped to [ε, 1 − ε], then l = −[y·log q_c + (1 − y)·log(1 − q_c)], each operation rounded to the
    dtype the framework computes in, then × w in float64. Keras clips to the bounds rounded to that dtype
    (keras/src/backend/*/nn.py), then its TensorFlow, JAX and NumPy backends compute `log(1 − q_c)`: at q = 0,
    y = 0 float32 gives −log(1 − 1.19e-7) = 1.1920929e-07. With `log1p`, the second term is `log1p(−q_c)`, as
    Keras on torch computes it through torch's binary_cross_entropy of q_c (aten Loss.cpp): there float32 gives
    −log1p(−1.0000000116860974e-07) = 1.0000001e-07. With `floor`, each log is first raised to at least `floor`
    (that kernel's −100: in float16 and bfloat16 1 − ε rounds to 1, so q = 1, y = 0 gives 100, not inf). The
    gradient, −y/q_c + (1 − y)/(1 − q_c), is zero outside the clip. Acts where the clip moves q or the floor
    raises a present term: inside the clip, the formula's own rounding (log(1 − q) for small q) is judged as
    usual."""
    if input_form != "probs":
        return None
    work = float_format(compute_dtype or inputs.dtype).numpy_dtype
    q64, y64, w, _p = _broadcast(inputs)
    q, y = q64.astype(work), y64.astype(work)
    low, high = work.type(epsilon), work.type(1.0 - epsilon)
    clipped = np.clip(q, low, high).astype(work)  # NumPy clips bfloat16 to float32; the bounds are exact
    inside = (q >= low) & (q <= high)
    acting = ~inside & ~np.isnan(q)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if quantity == "loss":
            log_q, log_1mq = np.log(clipped), (np.log1p(-clipped) if log1p else np.log(1 - clipped))
            if floor is not None:
                acting |= ((y != 0) & (log_q < floor)) | ((1 - y != 0) & (log_1mq < floor))
                log_q, log_1mq = np.maximum(log_q, work.type(floor)), np.maximum(log_1mq, work.type(floor))
            per_element = -(y * log_q + (1 - y) * log_1mq)
        else:
            per_element = np.where(inside, -y / clipped + (1 - y) / (1 - clipped), work.type(0))
        return _reduce(w * per_element.astype(np.float64), reduction, quantity, acting,
                       _exact(inputs, input_form, quantity))


@_kind("flush_to_zero")
def _flush_to_zero(inputs: CaseInputs, input_form: str, reduction: str, quantity: str,
                   compute_dtype: str | None = None, **_: Any) -> Prediction | None:
    """The exact value of the inputs with subnormals read as zero, with subnormal results flushed to zero, where
    "subnormal" is of the dtype the arithmetic happens in. Acts where an input or the exact result is
    subnormal there."""
    fmt = float_format(compute_dtype or inputs.dtype)

    def subnormal(values: np.ndarray) -> np.ndarray:
        magnitude = np.abs(values.astype(np.float64))
        return (magnitude != 0) & (magnitude < fmt.smallest_normal)

    def flush(values: np.ndarray) -> np.ndarray:
        return np.where(subnormal(values), np.copysign(0.0, values), values)

    originals = [v if v is not None and v.dtype.name == inputs.dtype else None
                 for v in (inputs.x, inputs.y, inputs.weight, inputs.pos_weight)]
    read_as_zero = np.zeros(inputs.x.shape, dtype=bool)
    for value in (v for v in originals if v is not None):
        read_as_zero |= np.broadcast_to(subnormal(value), inputs.x.shape)
    if read_as_zero.any():  # the exact value of the inputs as the flushing arithmetic reads them
        inputs = CaseInputs(inputs.dtype, *(  # type: ignore[arg-type]
            new if old is None else flush(old.astype(np.float64)).astype(old.dtype)
            for new, old in zip((inputs.x, inputs.y, inputs.weight, inputs.pos_weight), originals, strict=True)))
    exact = reference(inputs, input_form)
    if quantity == "grad":
        hi = exact.grad(reduction)[0]
        return Prediction(flush(hi), np.zeros_like(hi), read_as_zero | subnormal(hi))
    per_element = flush(exact.loss_hi)
    if reduction == "none":
        return Prediction(per_element, np.zeros_like(per_element), read_as_zero | subnormal(exact.loss_hi))
    reduced = _reduce(per_element, reduction, "loss", read_as_zero | subnormal(exact.loss_hi))
    return reduced._replace(hi=flush(reduced.hi), acting=reduced.acting | subnormal(reduced.hi))


@_kind("weighted_average")
def _weighted_average(inputs: CaseInputs, input_form: str, reduction: str, quantity: str,
                      **_: Any) -> Prediction | None:
    """The mean as a weighted average (np.average): Σ w·l / Σ w, and its gradient w·∂l/∂x / Σ w, with Σ w exact.
    Acts on a weighted mean whose weights do not sum to n; says nothing where they sum to 0 (np.average
    raises)."""
    if reduction != "mean" or inputs.weight is None:
        return None
    w = _broadcast(inputs)[2]
    total = math.fsum(w.ravel().tolist())
    if total == 0 or not math.isfinite(total):
        return None
    exact, acting = reference(inputs, input_form), total != w.size
    if quantity == "loss":
        return Prediction(np.array((exact.sum_hi + exact.sum_lo) / total), np.array(0.0), np.array(acting))
    grad = exact.grad_hi / total
    return Prediction(grad, np.zeros_like(grad), np.full(grad.shape, acting))


def predict(convention: Convention, inputs: CaseInputs, input_form: str, reduction: str, quantity: str,
            compute_dtype: str | None = None) -> Prediction | None:
    """What `convention` predicts for this result, or None where it has nothing to say (inputs that have no BCE
    value among them). `compute_dtype` is the dtype the implementation computes in when it is not the input's (a
    Keras loss class's float32)."""
    if shape_problem(inputs):
        return None
    return _KINDS[convention.kind](inputs, input_form, reduction, quantity, compute_dtype=compute_dtype,
                                   **convention.parameters)
