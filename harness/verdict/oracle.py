"""The exact reference: BCE evaluated exactly on the inputs as rounded to the dtype under test.

Per element, with weight w, pos_weight p and the convention that a label term whose coefficient is 0 is
absent (0·log 0 = 0, as PyTorch's BCELoss documentation intends); the weight multiplies the loss as a plain
product (IEEE: a weight of 0 on an infinite loss gives NaN, in every framework and here):

    logits:  l = w·[(1 − y)·softplus(x) + p·y·softplus(−x)],      dl/dx = w·[(1 − y)·σ(x) − p·y·σ(−x)]
    probs:   l = −w·[p·y·log q + (1 − y)·log(1 − q)],              dl/dq = w·[−p·y/q + (1 − y)/(1 − q)]

Reductions: `sum` = Σ l, `mean` = Σ l / n (n = number of elements, weights included, PyTorch's convention);
the gradient of `mean` is dl/dx / n, and for `none` the gradient of the sum.

Two methods, and the cheaper one only where its error is proven small:
- fast: float64 formulas (for float32 and smaller targets), each element carrying an a-priori bound on its
  absolute error (every libm call assumed ≤ 4 ulp, far above what glibc and NumPy's SIMD kernels document);
  an element is accepted only if its bound is below 1/1024 of the target's ULP, and a sum only if its summed
  bound is. Everything else goes to the slow method.
- slow: mpmath at 256 bits and again at 512 bits (Ziv's strategy): a value is accepted when both agree to
  1/1024 of the target's ULP, else the precision doubles (up to 8192 bits).
Values are returned as double-double pairs (hi, lo), so a float64 result can be measured to a fraction of
its ULP. Results are cached on disk by content hash and `ORACLE_VERSION`.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Generic, TypeVar

import mpmath
import numpy as np

from cases import DTYPES, CaseInputs, FloatFormat, float_format
from harness.verdict.domain import shape_problem

__all__ = ["ORACLE_VERSION", "Recent", "Reference", "cache_dir", "cached_reference", "located_reference", "reference",
           "reference_uncached"]

ORACLE_VERSION = 4  # 4: labels, weights and pos_weight of exactly 0 or 1 carry no rounding slack
_U = 2.0**-53  # unit roundoff of float64
_FAST_ERROR_FACTOR = 32.0  # a-priori bound: ≤ 16 roundings' worth, doubled for margin (see module docstring)
_ACCEPT = 2.0**-10  # accept a value whose error is below this fraction of the target ULP
_START_PREC = 256
_MAX_PREC = 8192


K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Reference:
    """Exact values for one case in one dtype, as double-double (hi + lo), and the condition bands.

    Per-element arrays have the shape of x; `*_band` is Σ_v |∂f/∂v|·½ulp(v) over the inputs v (x, y, weight,
    pos_weight): what rounding the inputs to the dtype could change the result by (a label, weight or pos_weight of
    exactly 0 or 1 is exact by meaning and adds nothing). `undefined` names why the
    case has no value (mismatched shapes); then the arrays are empty.
    """

    dtype: str
    n: int
    loss_hi: np.ndarray
    loss_lo: np.ndarray
    loss_band: np.ndarray
    grad_hi: np.ndarray
    grad_lo: np.ndarray
    grad_band: np.ndarray
    grad_mean_hi: np.ndarray
    grad_mean_lo: np.ndarray
    sum_hi: float
    sum_lo: float
    sum_band: float
    mean_hi: float
    mean_lo: float
    slow_elements: int
    undefined: str | None = None

    @property
    def nbytes(self) -> int:
        """The bytes of its arrays."""
        return sum(getattr(self, name).nbytes for name in _ARRAY_FIELDS)

    def loss(self, reduction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hi, lo, band) of the loss under `reduction`."""
        if reduction == "none":
            return self.loss_hi, self.loss_lo, self.loss_band
        if reduction == "sum":
            return np.array(self.sum_hi), np.array(self.sum_lo), np.array(self.sum_band)
        band = self.sum_band / self.n if self.n else 0.0
        return np.array(self.mean_hi), np.array(self.mean_lo), np.array(band)

    def grad(self, reduction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hi, lo, band) of the gradient of the reduced loss (of the sum for `none`)."""
        if reduction == "mean":
            return self.grad_mean_hi, self.grad_mean_lo, self.grad_band / max(self.n, 1)
        return self.grad_hi, self.grad_lo, self.grad_band


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class _Operands:
    """Inputs as float64, broadcast to x's shape and flattened (every dtype under test embeds in float64)."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    p: np.ndarray
    shape: tuple[int, ...]
    half_ulps: dict[str, np.ndarray]


def _operands(inputs: CaseInputs) -> _Operands:
    shape = inputs.x.shape

    def flat(value: np.ndarray | None) -> np.ndarray:
        if value is None:
            return np.ones(int(np.prod(shape)), dtype=np.float64)
        return np.broadcast_to(value.astype(np.float64), shape).ravel()

    x, y = flat(inputs.x), flat(inputs.y)
    w, p = flat(inputs.weight), flat(inputs.pos_weight)

    def half_ulp(values: np.ndarray, given: np.ndarray | None, by_meaning: bool = True) -> np.ndarray:
        # An absent or integer-typed input is exact; an infinite one is not a rounded number. A label, weight or
        # pos_weight of exactly 0 or 1 is exact by meaning (a hard label, no weight): no rounding made it. An
        # input given in another dtype (float64 labels beside float16 logits) was rounded to its own dtype.
        if given is None or given.dtype.name not in DTYPES:
            return np.zeros_like(values)
        rounded = np.isfinite(values) & ~(by_meaning & ((values == 0) | (values == 1)))
        return np.where(rounded, 0.5 * float_format(given.dtype.name).ulp(values), 0.0)

    halves = {"x": half_ulp(x, inputs.x, by_meaning=False), "y": half_ulp(y, inputs.y),
              "w": half_ulp(w, inputs.weight), "p": half_ulp(p, inputs.pos_weight)}
    return _Operands(x, y, w, p, shape, halves)


# ------------------------------------------------------------------------------------ float64 formulas


def _times(coefficient: np.ndarray, value: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(coefficient == 0, 0.0, coefficient * value)


def _finite_abs(values: np.ndarray) -> np.ndarray:
    """|values| with non-finite entries as 0: an infinite sensitivity licenses no error (see `_bands`)."""
    return np.where(np.isfinite(values), np.abs(values), 0.0)


@dataclass(frozen=True, slots=True)
class _Fast:
    loss: np.ndarray
    loss_bound: np.ndarray
    grad: np.ndarray
    grad_bound: np.ndarray
    loss_band: np.ndarray
    grad_band: np.ndarray


def _fast_logits(o: _Operands) -> _Fast:
    x, y, w, p = o.x, o.y, o.w, o.p
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.exp(-np.abs(x))
        log_term = np.log1p(t)
        sp_pos = np.where(x == -np.inf, 0.0, np.maximum(x, 0.0) + log_term)  # softplus(x)
        sp_neg = np.where(x == np.inf, 0.0, np.maximum(-x, 0.0) + log_term)  # softplus(-x)
        big, small = 1.0 / (1.0 + t), t / (1.0 + t)
        sig_pos, sig_neg = np.where(x >= 0, big, small), np.where(x >= 0, small, big)  # σ(x), σ(-x)
        a, py = 1.0 - y, p * y
        term_a, term_b = _times(a, sp_pos), _times(py, sp_neg)
        loss = w * (term_a + term_b)
        grad_a, grad_b = a * sig_pos, py * sig_neg
        grad = w * (grad_a - grad_b)
        loss_bound = _FAST_ERROR_FACTOR * _U * np.abs(w) * (np.abs(term_a) + np.abs(term_b))
        grad_bound = _FAST_ERROR_FACTOR * _U * np.abs(w) * (np.abs(grad_a) + np.abs(grad_b))
        # sensitivities, for the condition bands
        h = o.half_ulps
        loss_band = (_finite_abs(grad) * h["x"] + _finite_abs(w * (p * sp_neg - sp_pos)) * h["y"]
                     + _finite_abs(term_a + term_b) * h["w"] + _finite_abs(w * y * sp_neg) * h["p"])
        grad_band = (_finite_abs(w * (a + py) * sig_pos * sig_neg) * h["x"]
                     + _finite_abs(w * (sig_pos + p * sig_neg)) * h["y"]
                     + _finite_abs(grad_a - grad_b) * h["w"] + _finite_abs(w * y * sig_neg) * h["p"])
    return _Fast(loss, loss_bound, grad, grad_bound, loss_band, grad_band)


def _fast_probs(o: _Operands) -> _Fast:
    q, y, w, p = o.x, o.y, o.w, o.p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a, py = 1.0 - y, p * y
        log_q, log_1mq = np.log(q), np.log1p(-q)
        term_a, term_b = _times(py, log_q), _times(a, log_1mq)
        loss = -(w * (term_a + term_b))
        inv_q, inv_1mq = 1.0 / q, 1.0 / (1.0 - q)
        grad_a, grad_b = _times(py, inv_q), _times(a, inv_1mq)
        grad = w * (grad_b - grad_a)
        loss_bound = _FAST_ERROR_FACTOR * _U * np.abs(w) * (np.abs(term_a) + np.abs(term_b))
        grad_bound = _FAST_ERROR_FACTOR * _U * np.abs(w) * (np.abs(grad_a) + np.abs(grad_b))
        h = o.half_ulps
        loss_band = (_finite_abs(grad) * h["x"] + _finite_abs(w * (p * log_q - log_1mq)) * h["y"]
                     + _finite_abs(term_a + term_b) * h["w"] + _finite_abs(w * y * log_q) * h["p"])
        grad_band = (_finite_abs(w * (py * inv_q**2 + a * inv_1mq**2)) * h["x"]
                     + _finite_abs(w * (p * inv_q + inv_1mq)) * h["y"]
                     + _finite_abs(grad_b - grad_a) * h["w"] + _finite_abs(w * y * inv_q) * h["p"])
    return _Fast(loss, loss_bound, grad, grad_bound, loss_band, grad_band)


# ------------------------------------------------------------------------------------- mpmath formulas

_MP = mpmath.mp
_INF = mpmath.inf


def _mp_times(coefficient: mpmath.mpf, value: mpmath.mpf) -> mpmath.mpf:
    return _MP.zero if coefficient == 0 else coefficient * value


def _mp_logits(x: float, y: float, w: float, p: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    if math.isnan(x) or math.isnan(y) or math.isnan(w) or math.isnan(p):
        return _MP.nan, _MP.nan
    a, py = 1 - _MP.mpf(y), _MP.mpf(p) * y
    if x == math.inf:
        sp_pos, sp_neg, sig_pos, sig_neg = _INF, _MP.zero, _MP.one, _MP.zero
    elif x == -math.inf:
        sp_pos, sp_neg, sig_pos, sig_neg = _MP.zero, _INF, _MP.zero, _MP.one
    else:
        mx = _MP.mpf(x)
        t = _MP.exp(-abs(mx))
        log_term = _MP.log1p(t)
        sp_pos, sp_neg = max(mx, 0) + log_term, max(-mx, 0) + log_term
        big, small = 1 / (1 + t), t / (1 + t)
        sig_pos, sig_neg = (big, small) if x >= 0 else (small, big)
    loss = w * (_mp_times(a, sp_pos) + _mp_times(py, sp_neg))
    grad = w * (a * sig_pos - py * sig_neg)
    return loss, grad


def _mp_probability_terms(q: float) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """(log q, log(1 − q), 1/q, 1/(1 − q)) at the working precision, with their limits at q = 0 and 1. Real
    logarithms only: log of a negative number is NaN here, as in every framework."""
    mq = _MP.mpf(q)
    log_q = -_INF if q == 0 else (_MP.log(mq) if q > 0 else _MP.nan)
    log_1mq = -_INF if q == 1 else (_MP.log1p(-mq) if q < 1 else _MP.nan)
    inv_q = _INF if q == 0 else 1 / mq
    inv_1mq = _INF if q == 1 else 1 / (1 - mq)
    return log_q, log_1mq, inv_q, inv_1mq


def _mp_probs(q: float, y: float, w: float, p: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    if math.isnan(q) or math.isnan(y) or math.isnan(w) or math.isnan(p):
        return _MP.nan, _MP.nan
    a, py = 1 - _MP.mpf(y), _MP.mpf(p) * y
    log_q, log_1mq, inv_q, inv_1mq = _mp_probability_terms(q)
    loss = -(w * (_mp_times(py, log_q) + _mp_times(a, log_1mq)))
    grad = w * (_mp_times(a, inv_1mq) - _mp_times(py, inv_q))
    return loss, grad


def _split(value: mpmath.mpf) -> tuple[float, float]:
    """mpf → (hi, lo) with hi the float64 rounding and lo the float64 rounding of the rest."""
    if _MP.isnan(value):
        return math.nan, 0.0
    hi = float(value)
    if math.isinf(hi):
        return hi, 0.0
    return hi, float(value - hi)


def _agree(a: tuple[float, float], b: tuple[float, float], fmt: FloatFormat) -> bool:
    """Whether two double-double values agree to `_ACCEPT` of the target's ULP (or are the same non-finite)."""
    if not (math.isfinite(a[0]) and math.isfinite(b[0])):
        return (math.isnan(a[0]) and math.isnan(b[0])) or a[0] == b[0]
    difference = abs((a[0] - b[0]) + (a[1] - b[1]))
    return difference <= _ACCEPT * float(fmt.ulp(b[0]))


_Element = Callable[[float, float, float, float], tuple[mpmath.mpf, mpmath.mpf]]


def _slow(
    element: _Element, o: _Operands, indices: np.ndarray, n: int, fmt: FloatFormat
) -> dict[int, tuple[tuple[float, float], tuple[float, float], tuple[float, float], mpmath.mpf]]:
    """Exact (loss, grad, grad / n) of the chosen elements, plus each loss as a high-precision mpf for sums."""
    results: dict[int, tuple[tuple[float, float], tuple[float, float], tuple[float, float], mpmath.mpf]] = {}
    for i in indices.tolist():
        args = (o.x[i], o.y[i], o.w[i], o.p[i])
        prec = _START_PREC
        with _MP.workprec(prec):
            previous = element(*args)
        while True:
            with _MP.workprec(2 * prec):
                current = element(*args)
                pairs = [_split(current[0]), _split(current[1]), _split(current[1] / n if n else current[1])]
            before = [_split(previous[0]), _split(previous[1])]
            if (_agree(before[0], pairs[0], fmt) and _agree(before[1], pairs[1], fmt)) or prec >= _MAX_PREC:
                results[i] = (pairs[0], pairs[1], pairs[2], current[0])
                break
            previous, prec = current, 2 * prec
    return results


# ----------------------------------------------------------------------------------------- reference


def reference_uncached(inputs: CaseInputs, input_form: str) -> Reference:
    """Compute the reference for one case in one dtype (no cache)."""
    fmt = float_format(inputs.dtype)
    problem = shape_problem(inputs)
    if problem:
        empty = np.zeros(0)
        return Reference(inputs.dtype, 0, empty, empty, empty, empty, empty, empty, empty, empty,
                         math.nan, 0.0, 0.0, math.nan, 0.0, 0, undefined=problem)
    o = _operands(inputs)
    n = o.x.size
    fast = (_fast_logits if input_form == "logits" else _fast_probs)(o)
    element = _mp_logits if input_form == "logits" else _mp_probs

    def accepted(value: np.ndarray, bound: np.ndarray) -> np.ndarray:
        # Non-finite results of these formulas are structural (inf or NaN inputs, log 0, overflow past every
        # target's range), hence exact; a finite one needs its bound below `_ACCEPT` of the target ULP.
        with np.errstate(invalid="ignore"):
            small_enough = bound <= _ACCEPT * fmt.ulp(np.maximum(np.abs(value) - bound, 0.0))
        return np.where(np.isfinite(value), small_enough, True)

    loss_ok = accepted(fast.loss, fast.loss_bound)
    grad_ok = accepted(fast.grad, fast.grad_bound)
    loss_hi, loss_lo = fast.loss.copy(), np.zeros(n)
    grad_hi, grad_lo = fast.grad.copy(), np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        grad_mean_hi, grad_mean_lo = fast.grad / n, np.zeros(n)

    # Sums: the exact sum (fsum) of the fast values, accepted if the summed element bounds are small enough; a sum
    # whose partials pass float64's largest number (losses near 1e308) is left to mpmath, as its mean may not be.
    if np.isfinite(fast.loss).all():
        try:
            fast_sum = math.fsum(fast.loss.tolist())
        except OverflowError:
            fast_sum = math.inf
        sum_bound = float(np.sum(fast.loss_bound)) + _U * abs(fast_sum)
        sum_ok = math.isfinite(fast_sum) and bool(loss_ok.all()) and \
            sum_bound <= _ACCEPT * float(fmt.ulp(max(abs(fast_sum) - sum_bound, 0.0)))
    else:
        fast_sum = float(np.sum(fast.loss))
        sum_ok = bool(loss_ok.all())
    slow_indices = np.flatnonzero(~(loss_ok & grad_ok)) if sum_ok else np.arange(n)
    slow = _slow(element, o, slow_indices, n, fmt)
    for i, (loss_pair, grad_pair, grad_mean_pair, _) in slow.items():
        loss_hi[i], loss_lo[i] = loss_pair
        grad_hi[i], grad_lo[i] = grad_pair
        grad_mean_hi[i], grad_mean_lo[i] = grad_mean_pair

    if sum_ok:
        sum_hi, sum_lo = fast_sum, 0.0
        mean_hi, mean_lo = (fast_sum / n if n else math.nan), 0.0
    else:
        with _MP.workprec(_MAX_PREC):
            total = _MP.fsum(item[3] for item in slow.values())
            sum_hi, sum_lo = _split(total)
            mean_hi, mean_lo = _split(total / n) if n else (math.nan, 0.0)
    return Reference(
        dtype=inputs.dtype,
        n=n,
        loss_hi=loss_hi.reshape(o.shape), loss_lo=loss_lo.reshape(o.shape),
        loss_band=fast.loss_band.reshape(o.shape),
        grad_hi=grad_hi.reshape(o.shape), grad_lo=grad_lo.reshape(o.shape),
        grad_band=fast.grad_band.reshape(o.shape),
        grad_mean_hi=grad_mean_hi.reshape(o.shape), grad_mean_lo=grad_mean_lo.reshape(o.shape),
        sum_hi=sum_hi, sum_lo=sum_lo, sum_band=float(np.sum(fast.loss_band)),
        mean_hi=mean_hi, mean_lo=mean_lo,
        slow_elements=len(slow),
    )


_ARRAY_FIELDS = {"loss_hi", "loss_lo", "loss_band", "grad_hi", "grad_lo", "grad_band", "grad_mean_hi",
                 "grad_mean_lo"}


def cache_dir() -> Path:
    """Where references are cached: $BCE_HARNESS_CACHE, else `.bce-cache/` in the working directory."""
    return Path(os.environ.get("BCE_HARNESS_CACHE", ".bce-cache")) / "reference"


def _cache_key(inputs: CaseInputs, input_form: str) -> str:
    return hashlib.sha256(f"oracle-v{ORACLE_VERSION}|{input_form}|{inputs.digest()}".encode()).hexdigest()


def cached_reference(inputs: CaseInputs, input_form: str) -> Reference | None:
    """The reference from the disk cache, or None when it is not there (a damaged entry is removed)."""
    path = cache_dir() / f"{_cache_key(inputs, input_form)}.npz"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as file, np.load(file, allow_pickle=False) as stored:
            values = {f.name: stored[f.name] for f in fields(Reference) if f.name in stored}
        return Reference(**{k: (v if k in _ARRAY_FIELDS else v.item()) for k, v in values.items()}, undefined=None)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):  # a truncated entry is a bad zip
        path.unlink(missing_ok=True)  # a damaged cache entry is recomputed, never trusted
        return None


class Recent(Generic[K, V]):
    """This process's latest values by key, as many as fit in `budget` bytes (their arrays and `_ENTRY_BYTES`
    for each) and `most` in number, the least recently used going first: an audit asks for a case's exact
    values again for each convention's prediction, each reduction and quantity, and its findings; rereading
    them from the disk cache is what this saves. A value larger than the budget is kept alone."""

    def __init__(self, budget: int = 256 * 2**20, most: int = 4096) -> None:
        self.budget, self.most, self.used = budget, most, 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key][0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` (its arrays hold `size` bytes) under `key`, and let the oldest go past the bounds."""
        if key in self._items:
            self.used -= self._items.pop(key)[1]
        self._items[key] = (value, size + _ENTRY_BYTES)
        self.used += size + _ENTRY_BYTES
        while len(self._items) > 1 and (self.used > self.budget or len(self._items) > self.most):
            self.used -= self._items.popitem(last=False)[1][1]


_ENTRY_BYTES = 1024  # what an entry holds besides its arrays (the objects, the small fields)
_RECENT: Recent[str, Reference] = Recent()  # this process's latest references, by cache key


def reference(inputs: CaseInputs, input_form: str, use_cache: bool = True) -> Reference:
    """The reference for one case in one dtype: from this process's recent ones, else from the disk cache when
    present, else computed (and stored in both)."""
    return located_reference(inputs, input_form, use_cache)[0]


def located_reference(inputs: CaseInputs, input_form: str, use_cache: bool = True) -> tuple[Reference, str]:
    """`reference`, and where it came from: "memory", "disk" or "computed"."""
    if not use_cache:
        return reference_uncached(inputs, input_form), "computed"
    key = _cache_key(inputs, input_form)
    if (recent := _RECENT.get(key)) is not None:
        return recent, "memory"
    stored = cached_reference(inputs, input_form)
    result, source = (stored, "disk") if stored is not None else (_computed_and_stored(inputs, input_form), "computed")
    _RECENT.put(key, result, result.nbytes)
    return result, source


def _computed_and_stored(inputs: CaseInputs, input_form: str) -> Reference:
    result = reference_uncached(inputs, input_form)
    if result.undefined is None:
        path = cache_dir() / f"{_cache_key(inputs, input_form)}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(temporary, **{f.name: getattr(result, f.name) for f in fields(Reference) if f.name != "undefined"})
        os.replace(temporary, path)
    return result
