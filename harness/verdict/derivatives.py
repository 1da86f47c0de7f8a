"""The exact reference for BCE's further derivatives, evaluated exactly on the inputs as rounded to the dtype tested.

Per element, with a = 1 − y, py = p·y, sp = softplus, σ = sigmoid, and a term whose coefficient is exactly 0 absent
(0·∞ = 0, as in `oracle`); the weight multiplies as a plain product (a weight of 0 on an infinite term gives NaN):

    logits:  dl/dx = w·(a·σ(x) − py·σ(−x))          d²l/dx² = w·(a + py)·σ(x)·σ(−x)
             dl/dy = w·(p·sp(−x) − sp(x))            dl/dw = a·sp(x) + py·sp(−x)          dl/dp = w·y·sp(−x)
    probs:   dl/dq = w·(a/(1 − q) − py/q)            d²l/dq² = w·(a/(1 − q)² + py/q²)
             dl/dy = w·(log(1 − q) − p·log q)        dl/dw = −(py·log q + a·log(1 − q))   dl/dp = −w·y·log q

(dl/dy's coefficients are 1 and p, so at q = 0 it is +∞ for p > 0.) For a reduction r of L (for "none", of Σ l),
"mean" dividing everything by n, a framework returns:
- grad_fwd: the forward-mode derivative along a tangent of ones: dl_i/dx_i per element ("none"), Σ_i dl_i/dx_i;
- grad_y, grad2: dl_i/dy_i and d²l_i/dx_i² per element;
- grad_weight, grad_pos_weight: dL/dw in the weight's own shape, Σ over the elements each entry broadcasts to.

Each element is mpmath under Ziv's strategy (256 bits, then doubling until two precisions agree to 1/1024 of the
target's ULP, up to 8192 bits), returned as a double-double (hi, lo); sums are exact sums of the high-precision
values. Bands have `oracle`'s meaning: Σ_v |∂q/∂v|·½ulp(v) over x, y, w, p (partials in float64). Results are cached
on disk by content hash and `DERIVATIVE_ORACLE_VERSION`, and the latest ones in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

from cases import CaseInputs, FloatFormat, float_format
from harness.verdict.domain import shape_problem
from harness.verdict.oracle import (
    _INF,
    _MAX_PREC,
    _MP,
    _START_PREC,
    ORACLE_VERSION,
    Recent,
    _agree,
    _finite_abs,
    _mp_probability_terms,
    _mp_times,
    _Operands,
    _operands,
    _split,
    _times,
    cache_dir,
)

__all__ = ["DERIVATIVE_ORACLE_VERSION", "DERIVATIVE_QUANTITIES", "DERIVATIVE_REDUCTIONS", "DerivativeReference",
           "Exact", "cached_derivative_reference", "derivative_reference"]

DERIVATIVE_ORACLE_VERSION = 1
DERIVATIVE_QUANTITIES = ("grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2")  # the element tuple's order
DERIVATIVE_REDUCTIONS = ("none", "mean", "sum")
_NEEDS = {"grad_weight": "weight", "grad_pos_weight": "pos_weight"}  # quantities that exist only with their input
_PARTS = ("hi", "lo", "band")


@dataclass(frozen=True, slots=True)
class Exact:
    """One quantity under one reduction, as the framework must return it.

    hi + lo is the exact value as a double-double (hi the float64 rounding, lo that of the rest); `band` is the
    rounding slack Σ_v |∂q/∂v|·½ulp(v) of the inputs; `reduced_over` the number of elements summed into each entry
    (None when nothing was summed).
    """

    hi: np.ndarray
    lo: np.ndarray
    band: np.ndarray
    reduced_over: int | None


@dataclass(frozen=True, slots=True)
class DerivativeReference:
    """Every derivative of one case in one dtype, under every reduction.

    `arrays` maps "<quantity>.<reduction>.<hi|lo|band>" to read-only float64 arrays in the shape the framework
    returns; grad_weight and grad_pos_weight are present only when the case has that input.
    """

    dtype: str
    input_form: str
    n: int
    arrays: Mapping[str, np.ndarray]

    def quantity(self, name: str, reduction: str) -> Exact:
        """The exact `name` ("grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2") under `reduction`.

        Raises:
            ValueError: for an unknown name or reduction, or a weight quantity of a case without that weight.
        """
        if name not in DERIVATIVE_QUANTITIES:
            raise ValueError(f"unknown derivative {name!r}; known: {', '.join(DERIVATIVE_QUANTITIES)}")
        if reduction not in DERIVATIVE_REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(DERIVATIVE_REDUCTIONS)}")
        key = f"{name}.{reduction}"
        if f"{key}.hi" not in self.arrays:
            raise ValueError(f"{name} needs a {_NEEDS.get(name, name)}, and this case has none")
        hi, lo, band = (self.arrays[f"{key}.{part}"] for part in _PARTS)
        return Exact(hi, lo, band, _reduced_over(name, reduction, self.n, hi.size))


def _reduced_over(name: str, reduction: str, n: int, size: int) -> int | None:
    """How many elements were summed into each entry: n for grad_fwd's scalar, else the broadcast count if > 1."""
    if name == "grad_fwd":
        return n if reduction != "none" else None
    count = n // size if size else 0
    return count if count > 1 else None


def _target_shape(inputs: CaseInputs, name: str, reduction: str) -> tuple[int, ...] | None:
    """The shape a framework returns `name` in under `reduction` (None: the case lacks the quantity's input)."""
    if name in _NEEDS:
        given = getattr(inputs, _NEEDS[name])
        return None if given is None else given.shape
    if name == "grad_fwd" and reduction != "none":
        return ()
    return inputs.x.shape


def _stored_shapes(inputs: CaseInputs) -> dict[str, tuple[int, ...]]:
    """The shape of every array a reference holds, by key."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name in DERIVATIVE_QUANTITIES:
        for reduction in DERIVATIVE_REDUCTIONS:
            shape = _target_shape(inputs, name, reduction)
            if shape is not None:
                shapes.update({f"{name}.{reduction}.{part}": shape for part in _PARTS})
    return shapes


# ------------------------------------------------------------------------------------- mpmath formulas


def _mp_softplus_sigmoid(x: float) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """(sp(x), sp(−x), σ(x), σ(−x)) at the working precision, exact limits at ±∞.

    sp(±x) = max(±x, 0) + log1p(e^−|x|); σ(x) = 1/(1 + e^−|x|) for x ≥ 0, e^−|x|/(1 + e^−|x|) below.
    """
    if x == math.inf:
        return _INF, _MP.zero, _MP.one, _MP.zero
    if x == -math.inf:
        return _MP.zero, _INF, _MP.zero, _MP.one
    mx = _MP.mpf(x)
    t = _MP.exp(-abs(mx))
    log_term = _MP.log1p(t)
    big, small = 1 / (1 + t), t / (1 + t)
    sig_pos, sig_neg = (big, small) if x >= 0 else (small, big)
    return max(mx, 0) + log_term, max(-mx, 0) + log_term, sig_pos, sig_neg


def _mp_logits(x: float, y: float, w: float, p: float) -> tuple[mpmath.mpf, ...]:
    """(dl/dx, dl/dy, dl/dw, dl/dp, d²l/dx²) of one logits element (see the module docstring); NaN in, NaN out."""
    if math.isnan(x) or math.isnan(y) or math.isnan(w) or math.isnan(p):
        return (_MP.nan,) * len(DERIVATIVE_QUANTITIES)
    a, py = 1 - _MP.mpf(y), _MP.mpf(p) * y
    sp_pos, sp_neg, sig_pos, sig_neg = _mp_softplus_sigmoid(x)
    return (
        w * (a * sig_pos - py * sig_neg),
        w * (_mp_times(p, sp_neg) - sp_pos),
        _mp_times(a, sp_pos) + _mp_times(py, sp_neg),
        w * _mp_times(y, sp_neg),
        w * (a + py) * sig_pos * sig_neg,
    )


def _mp_probs(q: float, y: float, w: float, p: float) -> tuple[mpmath.mpf, ...]:
    """(dl/dq, dl/dy, dl/dw, dl/dp, d²l/dq²) of one probabilities element; real logarithms only (log of a negative
    number is NaN); NaN in, NaN out."""
    if math.isnan(q) or math.isnan(y) or math.isnan(w) or math.isnan(p):
        return (_MP.nan,) * len(DERIVATIVE_QUANTITIES)
    a, py = 1 - _MP.mpf(y), _MP.mpf(p) * y
    log_q, log_1mq, inv_q, inv_1mq = _mp_probability_terms(q)
    return (
        w * (_mp_times(a, inv_1mq) - _mp_times(py, inv_q)),
        w * (log_1mq - _mp_times(p, log_q)),
        -(_mp_times(py, log_q) + _mp_times(a, log_1mq)),
        -(w * _mp_times(y, log_q)),
        w * (_mp_times(a, inv_1mq**2) + _mp_times(py, inv_q**2)),
    )


_Element = Callable[[float, float, float, float], tuple[mpmath.mpf, ...]]
_ELEMENTS: dict[str, _Element] = {"logits": _mp_logits, "probs": _mp_probs}


def _evaluated(element: _Element, args: tuple[float, ...], n: int, prec: int) -> tuple[mpmath.mpf, ...]:
    """The element's derivatives at `prec` bits, followed by each divided by n (the mean's share)."""
    with _MP.workprec(prec):
        values = element(*args)
        return values + tuple(value / n for value in values)


def _converged(element: _Element, args: tuple[float, ...], n: int, fmt: FloatFormat) -> tuple[mpmath.mpf, ...]:
    """Ziv's strategy: the element's derivatives at 256 bits, then at twice the precision until every value (and its
    share of a mean) agrees with the previous precision's to 1/1024 of the target's ULP, or 8192 bits are reached."""
    prec = _START_PREC
    previous = _evaluated(element, args, n, prec)
    while True:
        prec *= 2
        current = _evaluated(element, args, n, prec)
        if prec >= _MAX_PREC or all(_agree(_split(a), _split(b), fmt) for a, b in zip(previous, current, strict=True)):
            return current[: len(DERIVATIVE_QUANTITIES)]
        previous = current


# ------------------------------------------------------------------------------- bands (float64 partials)


def _band(o: _Operands, partials: Sequence[np.ndarray | float]) -> np.ndarray:
    """Σ_v |∂q/∂v|·½ulp(v) for the partials along (x, y, w, p); a non-finite partial licenses no error (0)."""
    total = np.zeros(o.x.size)
    for partial, name in zip(partials, ("x", "y", "w", "p"), strict=True):
        total = total + _finite_abs(np.asarray(partial, dtype=np.float64)) * o.half_ulps[name]
    return total


def _logit_bands(o: _Operands) -> dict[str, np.ndarray]:
    """Each quantity's band; with s = σ(x), s̄ = σ(−x): dσ(x)/dx = s·s̄, d sp(x)/dx = s, d sp(−x)/dx = −s̄."""
    x, y, w, p = o.x, o.y, o.w, o.p
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.exp(-np.abs(x))
        log_term = np.log1p(t)
        sp_pos = np.where(x == -np.inf, 0.0, np.maximum(x, 0.0) + log_term)
        sp_neg = np.where(x == np.inf, 0.0, np.maximum(-x, 0.0) + log_term)
        big, small = 1.0 / (1.0 + t), t / (1.0 + t)
        s, s_bar = np.where(x >= 0, big, small), np.where(x >= 0, small, big)
        a, py, ss = 1.0 - y, p * y, s * s_bar
        d_x, d_y = a * s - py * s_bar, _times(p, sp_neg) - sp_pos  # dl/dx / w, dl/dy / w
        partials = {  # quantity: (∂/∂x, ∂/∂y, ∂/∂w, ∂/∂p)
            "grad_fwd": (w * (a + py) * ss, -w * (s + p * s_bar), d_x, -w * y * s_bar),
            "grad_y": (-w * (p * s_bar + s), 0.0, d_y, w * sp_neg),
            "grad_weight": (d_x, d_y, 0.0, _times(y, sp_neg)),
            "grad_pos_weight": (-w * y * s_bar, w * sp_neg, _times(y, sp_neg), 0.0),
            "grad2": (w * (a + py) * ss * (s_bar - s), w * (p - 1.0) * ss, (a + py) * ss, w * y * ss),
        }
        return {name: _band(o, partial) for name, partial in partials.items()}


def _prob_bands(o: _Operands) -> dict[str, np.ndarray]:
    """Each quantity's band; d log q/dq = 1/q, d log(1 − q)/dq = −1/(1 − q), d (1/q)ᵏ/dq = −k/qᵏ⁺¹."""
    q, y, w, p = o.x, o.y, o.w, o.p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a, py = 1.0 - y, p * y
        log_q, log_1mq = np.log(q), np.log1p(-q)
        inv_q, inv_1mq = 1.0 / q, 1.0 / (1.0 - q)
        d_x = _times(a, inv_1mq) - _times(py, inv_q)  # dl/dq / w
        d_xx = _times(a, inv_1mq**2) + _times(py, inv_q**2)  # d²l/dq² / w
        d_y = log_1mq - _times(p, log_q)  # dl/dy / w
        d_yq = -(inv_1mq + _times(p, inv_q))  # d(dl/dy)/dq / w
        partials = {  # quantity: (∂/∂q, ∂/∂y, ∂/∂w, ∂/∂p)
            "grad_fwd": (w * d_xx, w * d_yq, d_x, -w * _times(y, inv_q)),
            "grad_y": (w * d_yq, 0.0, d_y, -w * log_q),
            "grad_weight": (d_x, d_y, 0.0, -_times(y, log_q)),
            "grad_pos_weight": (-w * _times(y, inv_q), -w * log_q, -_times(y, log_q), 0.0),
            "grad2": (2.0 * w * (_times(a, inv_1mq**3) - _times(py, inv_q**3)),
                      w * (_times(p, inv_q**2) - inv_1mq**2), d_xx, w * _times(y, inv_q**2)),
        }
        return {name: _band(o, partial) for name, partial in partials.items()}


_BANDS: dict[str, Callable[[_Operands], dict[str, np.ndarray]]] = {"logits": _logit_bands, "probs": _prob_bands}


# ----------------------------------------------------------------------------------------- assembly


def _exact_sum(values: Sequence[mpmath.mpf], divisor: int) -> tuple[float, float]:
    """(Σ values) / divisor as a double-double. mpmath's fsum adds the values' exact binary expansions and rounds
    once (to 8192 bits); it drops only a term 2^16384 times smaller than the running sum."""
    if divisor == 0:
        return math.nan, 0.0  # the mean over no elements
    with _MP.workprec(_MAX_PREC):
        return _split(_MP.fsum(values) / divisor)


def _grouped(values: Sequence[mpmath.mpf], band: np.ndarray, x_shape: tuple[int, ...], shape: tuple[int, ...],
             divisor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi, lo, band) in `shape`: each entry the sum over the elements of x it broadcasts to, divided by `divisor`
    (the identity for shape = x's shape); the band of a sum is the sum of the bands."""
    size = math.prod(shape)
    entry = np.broadcast_to(np.arange(size).reshape(shape), x_shape).ravel()
    members: list[list[mpmath.mpf]] = [[] for _ in range(size)]
    for value, index in zip(values, entry.tolist(), strict=True):
        members[index].append(value)
    pairs = [_exact_sum(group, divisor) for group in members]
    hi = np.array([pair[0] for pair in pairs], dtype=np.float64).reshape(shape)
    lo = np.array([pair[1] for pair in pairs], dtype=np.float64).reshape(shape)
    bands = np.asarray(np.bincount(entry, weights=band, minlength=size).reshape(shape) / max(divisor, 1))
    return hi, lo, bands


def _computed(inputs: CaseInputs, input_form: str) -> DerivativeReference:
    """Every derivative of one case in one dtype, computed (no cache)."""
    fmt = float_format(inputs.dtype)
    o = _operands(inputs)
    n = o.x.size
    exact = [_converged(_ELEMENTS[input_form], (o.x[i], o.y[i], o.w[i], o.p[i]), n, fmt) for i in range(n)]
    bands = _BANDS[input_form](o)
    arrays: dict[str, np.ndarray] = {}
    for k, name in enumerate(DERIVATIVE_QUANTITIES):
        values = [element[k] for element in exact]
        for reduction in DERIVATIVE_REDUCTIONS:
            shape = _target_shape(inputs, name, reduction)
            if shape is None:
                continue
            parts = _grouped(values, bands[name], inputs.x.shape, shape, n if reduction == "mean" else 1)
            arrays.update({f"{name}.{reduction}.{part}": value for part, value in zip(_PARTS, parts, strict=True)})
    return DerivativeReference(inputs.dtype, input_form, n, _read_only(arrays))


def _read_only(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for value in arrays.values():
        value.flags.writeable = False
    return arrays


def _checked(inputs: CaseInputs, input_form: str) -> None:
    """Raise ValueError for inputs without derivatives (shapes that do not broadcast) or an unknown input form."""
    if input_form not in _ELEMENTS:
        raise ValueError(f"unknown input_form {input_form!r}; known: {', '.join(_ELEMENTS)}")
    problem = shape_problem(inputs)
    if problem:
        raise ValueError(f"BCE has no derivatives here: {problem}")


# -------------------------------------------------------------------------------------------- cache


def _cache_path(inputs: CaseInputs, input_form: str) -> Path:
    """$BCE_HARNESS_CACHE/derivatives/<sha256 of both versions, the form and the inputs' digest>.npz"""
    text = f"derivatives-v{DERIVATIVE_ORACLE_VERSION}|oracle-v{ORACLE_VERSION}|{input_form}|{inputs.digest()}"
    return cache_dir().parent / "derivatives" / f"{hashlib.sha256(text.encode()).hexdigest()}.npz"


def cached_derivative_reference(inputs: CaseInputs, input_form: str) -> DerivativeReference | None:
    """The derivatives from the disk cache, or None when they are not there (a damaged entry is removed).

    Raises:
        ValueError: as `derivative_reference` does.
    """
    _checked(inputs, input_form)
    path = _cache_path(inputs, input_form)
    if not path.is_file():
        return None
    shapes = _stored_shapes(inputs)
    try:
        # np.load leaks the file it opened when a damaged zip fails to parse; with our own handle it cannot
        with path.open("rb") as file, np.load(file, allow_pickle=False) as stored:
            arrays = {key: np.asarray(stored[key], dtype=np.float64) for key in shapes}
            complete = set(stored.files) == set(shapes)
        if not complete or any(arrays[key].shape != shape for key, shape in shapes.items()):
            raise ValueError("stored arrays do not match the case")
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        path.unlink(missing_ok=True)  # a damaged cache entry is recomputed, never trusted
        return None
    return DerivativeReference(inputs.dtype, input_form, inputs.x.size, _read_only(arrays))


def _stored(result: DerivativeReference, path: Path) -> None:
    """Write `result` to `path` atomically (a temporary file renamed into place); a cache that cannot be written
    is skipped, never fatal."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".tmp.npz")
        try:
            with os.fdopen(handle, "wb") as file:
                payload: dict[str, Any] = dict(result.arrays)  # np.savez's stub types **kwds as its keywords
                np.savez(file, **payload)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(OSError):  # gone after the rename; left behind only by a failed write
                os.unlink(temporary)
    except OSError:
        pass


_RECENT: Recent[Path, DerivativeReference] = Recent()  # this process's latest, by cache path


def derivative_reference(inputs: CaseInputs, input_form: str, use_cache: bool = True) -> DerivativeReference:
    """The exact derivatives of one case in one dtype: from this process's recent ones, else from the disk cache,
    else computed (and stored in both).

    Args:
        inputs: the case rounded to its dtype; weight and pos_weight broadcast to x's shape.
        input_form: "logits" or "probs".
        use_cache: False computes afresh and stores nothing.

    Raises:
        ValueError: for shapes that do not broadcast (the problem is named) or an unknown input form.
    """
    _checked(inputs, input_form)
    if not use_cache:
        return _computed(inputs, input_form)
    path = _cache_path(inputs, input_form)
    if (recent := _RECENT.get(path)) is not None:
        return recent
    result = cached_derivative_reference(inputs, input_form)
    if result is None:
        result = _computed(inputs, input_form)
        _stored(result, path)
    _RECENT.put(path, result, sum(array.nbytes for array in result.arrays.values()))
    return result
