"""scikit-learn: `sklearn.metrics.log_loss` on probabilities and the private `HalfBinomialLoss` (the loss
LogisticRegression and the gradient-boosting classifiers train with) on logits, with its analytic gradient and
Hessian. No autodiff, no GPU, no compiled modes.

Both take 1-D sample arrays: an input of any shape is given as its elements (`ravel`), the weight broadcast to the
input's shape first, as users must (`sample_weight` is per sample). Inputs whose shapes differ go as they are, so
that sklearn answers for them. Both reduce as sklearn does: the mean is the weighted average Σ w·l / Σ w
(`np.average`; LinearModelLoss divides its gradient by the same Σ w), not Σ w·l / n. The module-level functions
are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from implementations.base import (
    Adapter,
    Direction,
    Implementation,
    Reduction,
    Result,
    Unsupported,
    source_of,
)
from implementations.numpy_adapter import REPRO_CAST, NumpyAdapter

__all__ = ["SklearnAdapter"]

log_loss: Callable[..., Any]  # bound by SklearnAdapter.use_here: sklearn.metrics.log_loss
HalfBinomialLoss: Callable[..., Any]  # bound by SklearnAdapter.use_here: sklearn._loss.loss.HalfBinomialLoss

# HalfBinomialLoss's Cython kernels are typed on the fused type floating_in (double, float): float16 raises
# "TypeError: Function call with ambiguous argument types" (checked with scikit-learn 1.9.1).
KERNEL_DTYPES = ("float64", "float32")
_LABELS_WORDS = "not belonging to the passed labels"  # log_loss's ValueError for a label outside [0, 1]


def samples(x: np.ndarray, y: np.ndarray, weight: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """x, y and the weight as sklearn's C-contiguous 1-D sample arrays: the elements of x and y where their shapes
    agree (else x and y as given), the weight broadcast to x's shape first."""
    if weight is not None:
        weight = np.ascontiguousarray(np.broadcast_to(weight, x.shape).ravel())
    if x.shape == y.shape:
        x, y = x.ravel(), y.ravel()
    return np.ascontiguousarray(x), np.ascontiguousarray(y), weight


def in_dtype(value: float, dtype: np.dtype) -> Any:
    """log_loss's Python float as the dtype it computed in, where it holds the value exactly (always, unless a
    wider weight promoted the average)."""
    typed = dtype.type(value)
    return typed if float(typed) == value or value != value else np.float64(value)


def sklearn_probs(p: np.ndarray, y: np.ndarray, reduction: str, weight: Any = None) -> Any:
    """log_loss(y, p, normalize=(reduction == "mean"), sample_weight=w, labels=[0, 1]): y holds class labels,
    p is P(y = 1); sklearn clips p and 1 − p to [eps, 1 − eps] (eps of p's dtype) and takes log of each."""
    p, y, weight = samples(p, y, weight)
    value = log_loss(y, p, normalize=reduction == "mean", sample_weight=weight, labels=[0, 1])
    computed = p.dtype if weight is None else np.result_type(p.dtype, weight.dtype)
    return in_dtype(value, computed)


def sklearn_logits(x: np.ndarray, y: np.ndarray, reduction: str, weight: Any = None,
                   with_grad: bool = True) -> tuple[Any, Any]:
    """HalfBinomialLoss: l = log1pexp(x) − y·x per sample (`loss`), the mean by `__call__` (np.average, Σ w·l / Σ w),
    the sum by np.sum of `loss`; the gradient (1 − y)σ(x) − yσ(−x) by `gradient`, divided by Σ w (n unweighted)
    for the mean as LinearModelLoss does."""
    shape = x.shape if x.shape == y.shape else None
    binomial = HalfBinomialLoss()
    xs, ys, weight = samples(x, y, weight)
    if reduction == "mean":
        loss = binomial(ys, xs, sample_weight=weight)
    elif reduction == "sum":
        loss = np.sum(binomial.loss(ys, xs, sample_weight=weight))
    else:
        loss = binomial.loss(ys, xs, sample_weight=weight)
        loss = loss if shape is None else loss.reshape(shape)
    if not with_grad:
        return loss, None
    grad = binomial.gradient(ys, xs, sample_weight=weight)
    if reduction == "mean":
        grad = grad / (xs.size if weight is None else np.sum(weight))
    return loss, grad if shape is None else grad.reshape(shape)


def sklearn_logits_hessian(x: np.ndarray, y: np.ndarray, reduction: str, weight: Any = None) -> Any:
    """HalfBinomialLoss.gradient_hessian's Hessian σ(x)σ(−x) (× w), divided by Σ w (n unweighted) for the mean as
    LinearModelLoss does: the diagonal of the reduced loss's Hessian with respect to x."""
    shape = x.shape if x.shape == y.shape else None
    xs, ys, weight = samples(x, y, weight)
    _, hessian = HalfBinomialLoss().gradient_hessian(ys, xs, sample_weight=weight)
    if reduction == "mean":
        hessian = hessian / (xs.size if weight is None else np.sum(weight))
    return hessian if shape is None else hessian.reshape(shape)


_REPRO_HEADER = ("import numpy as np\nfrom sklearn._loss.loss import HalfBinomialLoss\n"
                 "from sklearn.metrics import log_loss\n\n")
_PROBS_API = ("sklearn.metrics.log_loss(y, p, normalize=r == 'mean', sample_weight=w, labels=[0, 1]) on the "
              "elements as samples (w broadcast to p's shape); its float read back in p's dtype")
_LOGITS_API = ("sklearn._loss.loss.HalfBinomialLoss(): .loss(y, x, sample_weight=w) per element, "
               "__call__(y, x, sample_weight=w) (np.average: Σ w·l / Σ w) for mean, np.sum(.loss(...)) for sum; "
               "gradient: .gradient(y, x, sample_weight=w) (/ Σ w for mean); elements as samples")


class SklearnAdapter(Adapter):
    framework = "sklearn"
    distributions = ("scikit-learn",)
    companions = ("scipy",)
    release_pages: ClassVar[Mapping[str, str]] = {"scikit-learn": "https://scikit-learn.org/stable/whats_new/v{minor}.html"}
    dtypes = ("float64", "float32", "float16")  # log_loss computes in float16 too; HalfBinomialLoss does not
    implementations = (
        Implementation("sklearn.probs", "probs", api=_PROBS_API, reductions=("mean", "sum"), differentiable=False),
        Implementation("sklearn.logits", "logits", api=_LOGITS_API),
    )

    def _load(self, threads: int) -> None:
        self.use_here()

    def use_here(self) -> None:
        global log_loss, HalfBinomialLoss
        from sklearn._loss.loss import HalfBinomialLoss as binomial
        from sklearn.metrics import log_loss as metric

        log_loss, HalfBinomialLoss = metric, binomial

    def runtime_version(self) -> str:
        import sklearn

        return str(sklearn.__version__)

    def devices(self) -> list[str]:
        return ["cpu"]

    @staticmethod
    def _check(impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: str, device: str) -> None:
        if device != "cpu":
            raise Unsupported(f"sklearn runs on the CPU only, not {device!r}")
        if reduction not in impl.reductions:
            raise Unsupported(f"{impl.impl} has no per-element form; it reduces to: {', '.join(impl.reductions)}")
        dtype = arrays["x"].dtype.name
        if impl.input_form == "logits" and dtype not in KERNEL_DTYPES:
            raise Unsupported(f"{impl.impl}: HalfBinomialLoss's Cython kernels take {' and '.join(KERNEL_DTYPES)} "
                              f"only; {dtype} raises TypeError (ambiguous argument types)")

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        self._check(impl, arrays, reduction, device)
        impl.api_for("pos_weight" in arrays)  # neither API has a pos_weight
        weight = arrays.get("weight")
        if impl.input_form == "logits":
            return Result(*sklearn_logits(arrays["x"], arrays["y"], reduction, weight))
        try:
            return Result(sklearn_probs(arrays["x"], arrays["y"], reduction, weight), None)
        except ValueError as exc:  # log_loss's own word that y holds labels other than the classes 0 and 1
            if _LABELS_WORDS in str(exc):
                raise Unsupported(f"sklearn.metrics.log_loss takes class labels, not soft labels: {exc}") from None
            raise

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        """grad2 of HalfBinomialLoss by its analytic Hessian; nothing else (sklearn has no autodiff)."""
        answers: dict[str, Any] = {}
        for name in wanted:
            if impl.impl != "sklearn.logits" or name != "grad2":
                answers[name] = Unsupported(f"sklearn has no autodiff: {impl.impl} has no {name}")
                continue
            try:
                self._check(impl, arrays, reduction, device)
                impl.api_for("pos_weight" in arrays)
                answers[name] = sklearn_logits_hessian(arrays["x"], arrays["y"], reduction, arrays.get("weight"))
            except Exception as exc:  # the framework's own answer for the Hessian
                answers[name] = exc
        return answers

    to_numpy = staticmethod(NumpyAdapter.to_numpy)  # its results are NumPy's
    dtype_name = staticmethod(NumpyAdapter.dtype_name)

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        self._check(impl, arrays, "mean", device)
        x, y, _ = samples(arrays["x"], arrays["y"])
        if impl.input_form == "probs":
            if direction == "forward_backward":
                raise Unsupported("sklearn.metrics.log_loss has no gradient")
            return lambda: log_loss(y, x, labels=[0, 1])
        binomial = HalfBinomialLoss()
        if direction == "forward":
            return lambda: binomial(y, x)

        def loss_and_gradient() -> Any:  # one pass of the kernel, reduced as LinearModelLoss does
            loss, grad = binomial.loss_gradient(y, x)
            return np.sum(loss) / x.size, grad / x.size

        return loss_and_gradient

    def repro_source(self, impl: Implementation, mode: str) -> str:
        if impl.input_form == "probs":
            call = "sklearn_probs(cast(x, DTYPE), cast(y, Y_DTYPE), REDUCTION, cast(weight, W_DTYPE)), None"
            functions: tuple[Callable[..., Any], ...] = (samples, in_dtype, sklearn_probs)
        else:
            call = "sklearn_logits(cast(x, DTYPE), cast(y, Y_DTYPE), REDUCTION, cast(weight, W_DTYPE))"
            functions = (samples, sklearn_logits)
        driver = f'''
def run(x, y, weight, pos_weight):
    loss, grad = {call}
    return np.asarray(loss, dtype=np.float64), None if grad is None else np.asarray(grad, dtype=np.float64)
'''
        return _REPRO_HEADER + REPRO_CAST + source_of(*functions) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        if impl.impl != "sklearn.logits" or quantity != "grad2":
            raise Unsupported(f"sklearn has no autodiff: {impl.impl} has no {quantity}")
        driver = '''
def run(x, y, weight, pos_weight):
    x, y, weight = cast(x, DTYPE), cast(y, Y_DTYPE), cast(weight, W_DTYPE)
    loss, _ = sklearn_logits(x, y, REDUCTION, weight, with_grad=False)
    return np.asarray(loss, dtype=np.float64), np.asarray(sklearn_logits_hessian(x, y, REDUCTION, weight),
                                                          dtype=np.float64)
'''
        return _REPRO_HEADER + REPRO_CAST + source_of(samples, sklearn_logits, sklearn_logits_hessian) + driver
