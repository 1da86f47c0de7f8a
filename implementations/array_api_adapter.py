"""The array API: one numerically stable BCE written once against the standard (`xp =
array_api_compat.array_namespace(x)`), run on each namespace installed: NumPy (`array_api_compat.numpy`, NumPy 2
under the compat layer, as `array_namespace` gives it to users), torch (`array_api_compat.torch`), JAX
(`jax.numpy`, which implements the standard itself), array-api-strict, and dask.array (each axis cut in two
chunks, ceil(n/2) elements each, so that every reduction of a case with an axis of 2 or more is chunked). Each
namespace has the logits form (`array_api.<namespace>`) and the probabilities form (`array_api.<namespace>_probs`).

The formula, its order of operations and its inputs are the same bytes in every namespace; only the namespace's
own functions differ: `xp.exp`, `xp.log1p`, `xp.log`, `xp.where`, `xp.full_like`, its arithmetic, type promotion
and `xp.mean` / `xp.sum`. So a difference between two namespaces on the same input is a difference between those
functions (accuracy near 0 or overflow, flush-to-zero, whether half precision is computed natively or in float32
and rounded once, how a reduction accumulates: pairwise, a chunked tree, in which dtype), never between loss
kernels: these rows isolate each library's elementwise functions and reductions from its own BCE.

Gradients by autograd where the namespace has one: torch (`torch.autograd.grad`) and JAX (`jax.vjp`, with x64
enabled; loss and gradient run as one `jax.jit` program, see `jax_loss_and_grad`); NumPy, array-api-strict and
dask have no autodiff, so those implementations are not differentiable (their gradient rows are `unsupported`).
Dtypes: float64 and float32 everywhere; float16 in NumPy, dask, torch and JAX; bfloat16 in torch and JAX only (it
is ml_dtypes', not NumPy's: `numpy.isdtype` raises TypeError on it); array-api-strict has neither half precision
(its `__array_namespace_info__().dtypes()`).

Imports: `array_api_compat` at load (about 0.01 s); each namespace on its first use in the worker, so a worker
pays only for the namespaces its jobs need (measured here, warm: array_api_strict 0.01 s, dask.array 0.4 s, jax
0.7 s, torch 1.5 s). The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from implementations.base import Adapter, Implementation, Reduction, Result, Unsupported, source_of
from implementations.numpy_adapter import REPRO_CAST

__all__ = ["NAMESPACES", "ArrayApiAdapter", "bce_logits", "bce_probs"]

# bound on first use, inside the worker process
array_api_compat: ModuleType
array_api_strict: ModuleType
dask: ModuleType
jax: ModuleType
torch: ModuleType


def softplus(xp: Any, z: Any) -> Any:
    """log(1 + e^z) = max(z, 0) + log1p(e^−|z|): no overflow, e^z's precision kept for z ≪ 0, exact 0 and inf at
    z = ∓inf.

    Written with `xp.where` rather than `xp.maximum(z, 0)` and `xp.abs`: their derivatives at 0 are each library's
    subgradient (torch splits maximum's tie and takes |z|' = 0 there: σ(0) = 1/2; JAX splits the tie but takes
    |z|' = 1: 1/2 − 1/2 = 0), while both pieces of the where form have the one derivative σ(0) at z = 0.
    """
    positive = z > 0
    return xp.where(positive, z, xp.zeros_like(z)) + xp.log1p(xp.exp(xp.where(positive, -z, z)))


def softplus_of_negative(xp: Any, z: Any) -> Any:
    """softplus(−z) = −log σ(z)."""
    return softplus(xp, -z)


def log(xp: Any, q: Any) -> Any:
    return xp.log(q)


def log_of_complement(xp: Any, q: Any) -> Any:
    """log(1 − q) as log1p(−q): exact for small q."""
    return xp.log1p(-q)


def term(xp: Any, coefficient: Any, function: Callable[[Any, Any], Any], value: Any, neutral: float) -> Any:
    """coefficient·function(value), absent (0, with a gradient of 0) where the coefficient is 0: the argument is
    replaced by a `neutral` one there before `function`, so neither the loss nor autodiff meets 0·∞ (0·log 0 = 0;
    y = 1 at x = +inf gives 0, not NaN)."""
    absent = coefficient == 0
    return coefficient * function(xp, xp.where(absent, xp.full_like(value, neutral), value))


def float_labels(xp: Any, x: Any, y: Any) -> Any:
    """Integer and bool labels in x's dtype (the standard defines no promotion between kinds); float labels
    as given (they promote by the standard's rules)."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape. Received: x.shape={x.shape}, y.shape={y.shape}")
    return y if xp.isdtype(y.dtype, "real floating") else xp.astype(y, x.dtype)


def reduce(xp: Any, loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l with w in the loss's dtype (the weights scale the loss, they do not widen it), then the namespace's own
    mean or sum (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = xp.astype(weight, loss.dtype) * loss
    if reduction == "mean":
        return xp.mean(loss)
    if reduction == "sum":
        return xp.sum(loss)
    return loss


def bce_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    """l = (1 − y)·softplus(x) + p·y·softplus(−x), each term absent where its coefficient is 0, then w·l reduced.

    The README's (1 − y)·x + (1 + (p − 1)·y)·softplus(−x) rearranged so that no term is negative: that one is
    −inf + inf at x = −inf, y = 0, and cancels for x ≫ 0 with a soft label.
    """
    xp = array_api_compat.array_namespace(x, y)
    y = float_labels(xp, x, y)
    positive = y if pos_weight is None else xp.astype(pos_weight, xp.result_type(x, y)) * y
    loss = term(xp, 1 - y, softplus, x, 0.0) + term(xp, positive, softplus_of_negative, x, 0.0)
    return reduce(xp, loss, reduction, weight)


def bce_probs(q: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    """l = −(p·y·log q + (1 − y)·log1p(−q)), each term absent where its coefficient is 0 (0·log 0 = 0), then w·l
    reduced."""
    xp = array_api_compat.array_namespace(q, y)
    y = float_labels(xp, q, y)
    positive = y if pos_weight is None else xp.astype(pos_weight, xp.result_type(q, y)) * y
    loss = -(term(xp, positive, log, q, 1.0) + term(xp, 1 - y, log_of_complement, q, 0.0))
    return reduce(xp, loss, reduction, weight)


# --- each namespace's arrays from NumPy's (exact: the values are already in the dtype), and its autodiff ---

def numpy_array(values: np.ndarray) -> Any:
    return np.array(values)


def torch_array(values: np.ndarray) -> Any:
    return torch.from_numpy(np.array(values, dtype=np.float64)).to(getattr(torch, values.dtype.name))


def jax_array(values: np.ndarray) -> Any:
    return jax.device_put(np.asarray(values))


def strict_array(values: np.ndarray) -> Any:
    return array_api_strict.asarray(values)


def dask_array(values: np.ndarray) -> Any:
    """Each axis in two chunks of ceil(n/2): every reduction of a case with an axis of 2 or more is chunked."""
    return dask.array.from_array(values, chunks=tuple(max(1, -(-n // 2)) for n in values.shape))


def loss_only(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """A namespace without autodiff: the reduced loss, no gradient."""
    return function(x, y, reduction, **options), None


def dask_loss(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """dask has no autodiff: the reduced loss's graph, computed by the synchronous scheduler (one thread), as built
    (optimizing the graph of a small case costs more than computing it)."""
    (loss,) = dask.compute(function(x, y, reduction, **options), scheduler="synchronous", optimize_graph=False)
    return loss, None


def torch_loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str,
                        **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through torch's autograd."""
    x = x.detach().requires_grad_(True)
    loss = function(x, y, reduction, **options)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss, grad


def jax_vjp(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through jax.vjp (a cotangent of ones)."""
    loss, pullback = jax.vjp(lambda value: function(value, y, reduction, **options), x)
    (grad,) = pullback(jax.numpy.ones_like(loss))
    return loss, grad


def jax_loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """`jax_vjp` as one XLA program per function, reduction, shape and dtype (jax.jit's cache keeps it), as JAX
    users run array-API code. Eager dispatch would compile each of the formula's primitives per shape and dtype:
    2.5 minutes of CPU for the default cases cold, 1 minute from the persistent cache, against 1.7 minutes and 22 s
    jitted. Fused, XLA rounds differently from op by op where both label terms are present (soft labels): 63 of
    744 loss results on the default cases differ from eager's in the last bits, none in the gradient.
    """
    step = jax.jit(jax_vjp, static_argnames=("function", "reduction"))
    return step(function=function, x=x, y=y, reduction=reduction, **options)


def to_numpy(values: Any) -> np.ndarray:
    """Any namespace's array as float64 NumPy (exact)."""
    module = type(values).__module__
    if module.startswith("torch"):
        return np.asarray(values.detach().to(torch.float64).cpu().numpy())
    if module.startswith("array_api_strict"):
        return np.asarray(np.from_dlpack(values), dtype=np.float64)
    return np.asarray(values).astype(np.float64)


@dataclass(frozen=True, slots=True)
class Namespace:
    """One array library behind `array_namespace`: what to import, its dtypes, its arrays and its autodiff."""

    name: str  # as in the implementation id
    module: str  # the import that provides it
    dtypes: tuple[str, ...]
    array: Callable[[np.ndarray], Any]
    run: Callable[..., tuple[Any, Any]]  # (function, x, y, reduction, **options) → (loss, grad or None)
    header: str  # a reproducer's imports
    differentiable: bool
    label: str  # what array_namespace(x) is, for the API column
    helpers: tuple[Callable[..., Any], ...] = ()  # what `run` calls, for a reproducer
    missing: str = ""  # why it lacks a dtype the others have


_ALL = ("float64", "float32", "float16", "bfloat16")
# bfloat16 is ml_dtypes', not NumPy's: numpy.isdtype raises TypeError on it, and dask follows NumPy
_NUMPY = ("float64", "float32", "float16")
_NOT_NUMPYS = "; bfloat16 is ml_dtypes', not NumPy's: numpy.isdtype raises TypeError on it"
NAMESPACES: dict[str, Namespace] = {space.name: space for space in (
    Namespace("numpy", "numpy", _NUMPY, numpy_array, loss_only, "", False, "array_api_compat.numpy (NumPy 2)",
              missing=_NOT_NUMPYS),
    Namespace("torch", "torch", _ALL, torch_array, torch_loss_and_grad, "import torch\n", True,
              "array_api_compat.torch"),
    Namespace("jax", "jax", _ALL, jax_array, jax_loss_and_grad,
              'import jax\n\njax.config.update("jax_enable_x64", True)\nimport jax.numpy\n', True, "jax.numpy",
              helpers=(jax_vjp,)),
    Namespace("strict", "array_api_strict", ("float64", "float32"), strict_array, loss_only,
              "import array_api_strict\n", False, "array_api_strict"),
    Namespace("dask", "dask", _NUMPY, dask_array, dask_loss,
              "import dask\nimport dask.array\n", False, "array_api_compat.dask.array, chunks of ceil(n/2) per axis",
              missing=_NOT_NUMPYS),
)}
_FORMS: dict[str, Callable[..., Any]] = {"logits": bce_logits, "probs": bce_probs}
_SOURCES: dict[str, tuple[Callable[..., Any], ...]] = {
    "logits": (softplus, softplus_of_negative, term, float_labels, reduce, bce_logits),
    "probs": (log, log_of_complement, term, float_labels, reduce, bce_probs),
}
_SOFTPLUS = "softplus(z) = xp.where(z > 0, z, 0) + xp.log1p(xp.exp(xp.where(z > 0, -z, z)))"


def _api(space: Namespace, form: str, pos_weight: bool) -> str:
    p = "p·" if pos_weight else ""
    if form == "logits":
        formula = f"(1-y)·softplus(x) + {p}y·softplus(-x), {_SOFTPLUS}"
    else:
        formula = f"-({p}y·xp.log(q) + (1-y)·xp.log1p(-q))"
    autodiff = {"torch": "torch.autograd", "jax": "jax.vjp, loss and gradient as one jax.jit program"}.get(
        space.name, "no autodiff")
    return (f"harness stable formula on xp = array_api_compat.array_namespace(x) = {space.label}: {formula}, a term "
            f"with coefficient 0 absent (xp.where); × weight; xp.mean / xp.sum; gradient: {autodiff}")


def _implementations() -> tuple[Implementation, ...]:
    """Both forms on every namespace. JAX's run as one jitted program, compiled per shape and dtype (~0.1 s of
    CPU each): as the compiled paths do, they run on the `path`-tagged cases, and on every case with --full."""
    out = []
    for space in NAMESPACES.values():
        logits = f"array_api.{space.name}"
        runs_on = "path" if space.name == "jax" else None
        out.append(Implementation(logits, "logits", api=_api(space, "logits", False),
                                  api_pos_weight=_api(space, "logits", True), formula=True,
                                  differentiable=space.differentiable, runs_on=runs_on))
        out.append(Implementation(f"{logits}_probs", "probs", api=_api(space, "probs", False),
                                  api_pos_weight=_api(space, "probs", True), formula=True,
                                  differentiable=space.differentiable, runs_on=runs_on,
                                  same_as=None if runs_on else logits, relation="" if runs_on else "probs_logits"))
    return tuple(out)


def _namespace_of(impl: Implementation) -> Namespace:
    return NAMESPACES[impl.impl.removeprefix("array_api.").removesuffix("_probs")]


class ArrayApiAdapter(Adapter):
    framework = "array_api"
    distributions = ("array-api-compat",)
    companions = ("numpy", "ml_dtypes", "torch", "jax", "jaxlib", "array-api-strict", "dask")
    implementations = _implementations()

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("array_api_compat") is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        return "array-api-compat is not installed; install it (pip install 'bce-harness[array_api]')"

    def _load(self, threads: int) -> None:
        global array_api_compat
        import array_api_compat as module

        array_api_compat = module
        self._threads = threads
        self._imported: set[str] = set()
        # read by XLA when JAX is first imported (as the jax adapter sets them): one Eigen thread, no preallocation
        if threads == 1:
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    def _import(self, space: Namespace) -> None:
        """The namespace's library, imported and configured on its first use in this process."""
        global array_api_strict, dask, jax, torch
        if space.name in self._imported:
            return
        if importlib.util.find_spec(space.module) is None:
            raise Unsupported(f"array_api.{space.name}: {space.module} is not installed here")
        if space.name == "torch":
            import torch as torch_module

            torch = torch_module
            torch.set_num_threads(self._threads)
        elif space.name == "jax":
            import jax as jax_module
            import jax.numpy

            jax = jax_module
            jax.config.update("jax_enable_x64", True)
            if self.compile_cache:  # eager dispatch compiles each primitive per shape and dtype: keep them
                jax.config.update("jax_compilation_cache_dir", self.compile_cache)
                jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
                jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        elif space.name == "strict":
            import array_api_strict as strict_module

            array_api_strict = strict_module
        elif space.name == "dask":
            import dask as dask_module
            import dask.array

            dask = dask_module
        self._imported.add(space.name)

    def runtime_version(self) -> str:
        return str(array_api_compat.__version__)

    def devices(self) -> list[str]:
        return ["cpu"]

    def _namespace(self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str) -> Namespace:
        space = _namespace_of(impl)
        if device != "cpu":
            raise Unsupported(f"{impl.impl} runs on the CPU only, not {device!r}")
        dtype = arrays["x"].dtype.name
        if dtype not in space.dtypes:
            raise Unsupported(f"{impl.impl}: {space.module} has no {dtype} (its floating dtypes: "
                              f"{', '.join(space.dtypes)}{space.missing})")
        self._import(space)
        return space

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        space = self._namespace(impl, arrays, device)
        tensors = {name: space.array(value) for name, value in arrays.items()}
        x, y = tensors.pop("x"), tensors.pop("y")
        return Result(*space.run(_FORMS[impl.input_form], x, y, reduction, **tensors))

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        """float32, bfloat16, …: torch's "torch.float32" and array-api-strict's "array_api_strict.float32" by
        their NumPy names."""
        return str(values.dtype).rsplit(".", 1)[-1]

    def repro_source(self, impl: Implementation, mode: str) -> str:
        space = _namespace_of(impl)
        driver = f'''
def run(x, y, weight, pos_weight):
    options = {{name: {space.array.__name__}(cast(value, W_DTYPE)) for name, value in
               (("weight", weight), ("pos_weight", pos_weight)) if value is not None}}
    x, y = {space.array.__name__}(cast(x, DTYPE)), {space.array.__name__}(cast(y, Y_DTYPE))
    loss, grad = {space.run.__name__}({_FORMS[impl.input_form].__name__}, x, y, REDUCTION, **options)
    return to_numpy(loss), None if grad is None else to_numpy(grad)
'''
        header = "import array_api_compat\n" + space.header + "\n"
        functions = (*_SOURCES[impl.input_form], space.array, *space.helpers, space.run, to_numpy)
        return header + REPRO_CAST + source_of(*functions) + driver
