"""tinygrad: `Tensor.binary_crossentropy_logits` (with its `pos_weight`) and `Tensor.binary_crossentropy` on
probabilities, on its CPU device (kernels compiled with clang); gradients and further derivatives by its
reverse-mode autodiff (`Tensor.gradient`); eager (lazy graphs realized per call) or `TinyJit`.

tinygrad 0.14 computes (tinygrad/mixin/op.py):
    binary_crossentropy_logits:  −(p·y·logsigmoid(x) + (1 − y)·logsigmoid(−x)), logsigmoid(x) = −softplus(−x),
        softplus(x) = logaddexp(x, 0) = log(e^(x−m) + e^(−m)) + m, m = max(x, 0): no log1p, so log(1 + e^−|x|)
        rounds to 0 once e^−|x| is below half an ULP of 1 (x = −20, y = 0 gives 0.0 in float32).
    binary_crossentropy:  −y·log(q) − (1 − y)·log(1 − q), no clamp (0·log 0 is NaN).
Neither takes a weight: the weighted loss is reduction "none" × w, then tinygrad's own .mean() / .sum() (what
its `_do_reduction` calls). The module-level functions are what runs, and their source is what a reproducer
prints.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from implementations.base import (
    Adapter,
    Direction,
    Implementation,
    Reduction,
    Result,
    Unsupported,
    derivative_answers,
    derivative_source,
    source_of,
)

__all__ = ["TinygradAdapter"]

tinygrad: ModuleType  # bound by TinygradAdapter.use_here, inside the worker process
Tensor: Any
dtypes: Any

# The compiled CPU device: tinygrad 0.14's CPU device builds its worker programs with clang whatever renderer its
# kernels use (CPU:LLVM and CPU:X86 included); the PYTHON device interprets every kernel (~2 s a call).
DEVICE = "CPU"
COMPILER = "clang"
_WEIGHTED = " (a weight: reduction='none', × weight, then .mean() / .sum(): the API has none)"


def from_numpy(values: Any, dtype_name: str) -> Any:
    """float64 values that are exact in `dtype_name` → a realized tinygrad tensor of that dtype (bfloat16 through
    float32, exactly: tinygrad reads no bfloat16 NumPy arrays)."""
    array = np.asarray(values)
    if dtype_name == "bfloat16":
        return Tensor(array.astype(np.float32), device="CPU").cast(dtypes.bfloat16).realize()
    return Tensor(array.astype(dtype_name), device="CPU").realize()


def to_numpy(values: Any) -> np.ndarray:
    """A tinygrad tensor as float64 NumPy values (Tensor.numpy reads bfloat16 through float32: exact)."""
    return np.asarray(values.numpy()).astype(np.float64)


def weighted_reduction(loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l, then tinygrad's own .mean() or .sum() (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = weight * loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def tinygrad_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    if weight is None:
        return x.binary_crossentropy_logits(y, reduction=reduction, pos_weight=pos_weight)
    return weighted_reduction(x.binary_crossentropy_logits(y, reduction="none", pos_weight=pos_weight),
                              reduction, weight)


def tinygrad_probs(q: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    if weight is None:
        return q.binary_crossentropy(y, reduction=reduction)
    return weighted_reduction(q.binary_crossentropy(y, reduction="none"), reduction, weight)


def loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx by Tensor.gradient, both realized in one schedule."""
    loss = function(x, y, reduction, **options)
    (grad,) = (loss.sum() if loss.shape else loss).gradient(x)
    Tensor.realize(loss, grad)
    return loss, grad


def gradient_wrt(name: str, function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """d(sum of the reduced loss)/d(the argument `name`: y, weight or pos_weight) by Tensor.gradient."""
    arguments = {"y": y, **options}
    loss = function(x, y, reduction, **options)
    (grad,) = (loss.sum() if loss.shape else loss).gradient(arguments[name])
    return grad.realize()


def second_derivative(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The diagonal of the Hessian wrt x: d/dx Σ dL/dx (the loss is elementwise, so H is diagonal), reverse over
    reverse."""
    loss = function(x, y, reduction, **options)
    (grad,) = (loss.sum() if loss.shape else loss).gradient(x)
    (diagonal,) = grad.sum().gradient(x)
    return diagonal.realize()


def no_forward_mode(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    raise Unsupported("tinygrad has no forward-mode autodiff (Tensor.gradient is reverse mode only)")


def jit_replay(jit: Any, *arguments: Any) -> tuple[Any, str]:
    """Call a TinyJit until its call replays the captured graph: its first call runs eagerly, the second captures
    (and runs what it captured), every later one replays. Returns the replay's outputs and the evidence; raises
    where the replay did not happen (JIT=0 in the environment, or no capture)."""
    while jit.cnt < 2:
        jit(*arguments)
    if not tinygrad.helpers.JIT or jit.captured is None:
        raise RuntimeError(f"TinyJit captured no graph (JIT={tinygrad.helpers.JIT.value}): it would run eagerly")
    before = jit.cnt
    outputs = jit(*arguments)
    return outputs, f"TinyJit captured-graph replays: {jit.cnt - before}"


_FUNCTIONS: dict[str, Callable[..., Any]] = {"tinygrad.logits": tinygrad_logits, "tinygrad.probs": tinygrad_probs}
_DERIVATIVES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "grad_fwd": (no_forward_mode, ()), "grad2": (second_derivative, ()),
    **{f"grad_{name}": (gradient_wrt, (name,)) for name in ("y", "weight", "pos_weight")},
}
_DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "bool")
_REPRO_HEADER = ('import os\n\nos.environ.setdefault("DEV", "CPU")  # the compiled CPU device (clang)\n'
                 'import tinygrad\nfrom tinygrad import Tensor, TinyJit, dtypes\n\n')


class TinygradAdapter(Adapter):
    """Every eager call compiles: tinygrad generates and compiles kernels for each new shape, dtype and graph
    (~0.3 s of CPU each here, its Python codegen more than clang), so a full audit of it costs ~290 s of CPU. Its
    implementations run on the `path` cases by default (runs_on="path"), every case with --full."""

    framework = "tinygrad"
    distributions = ("tinygrad",)
    release_pages: ClassVar[Mapping[str, str]] = {"tinygrad": "https://github.com/tinygrad/tinygrad/releases/tag/v{version}"}
    modes = ("eager", "TinyJit")
    implementations = (
        Implementation(
            "tinygrad.logits", "logits",
            api="x.binary_crossentropy_logits(y, reduction=r)" + _WEIGHTED,
            api_pos_weight="x.binary_crossentropy_logits(y, reduction=r, pos_weight=p)" + _WEIGHTED,
            runs_on="path",
        ),
        Implementation(
            "tinygrad.probs", "probs",
            api="q.binary_crossentropy(y, reduction=r)" + _WEIGHTED,
            same_as="tinygrad.logits", relation="probs_logits", runs_on="path",
        ),
    )

    @classmethod
    def is_available(cls) -> bool:
        """tinygrad installed and its CPU device's compiler on PATH (found without importing tinygrad)."""
        return importlib.util.find_spec("tinygrad") is not None and shutil.which(cls._compiler()) is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        if importlib.util.find_spec("tinygrad") is None:
            return super().unavailable_reason()
        return (f"tinygrad's CPU device compiles its kernels with {cls._compiler()}, which is not on PATH (its "
                f"LLVM and X86 renderers need clang too); install it (Debian: apt-get install -y "
                f"--no-install-recommends clang). Its PYTHON device needs no compiler but takes ~2 s a call, "
                f"so the audit does not use it")

    @staticmethod
    def _compiler() -> str:
        return os.environ.get("CC", COMPILER)  # tinygrad's ClangCompiler runs $CC, else clang

    def _load(self, threads: int) -> None:
        # before tinygrad reads its environment: the compiled CPU device, its kernels on `threads` cores, and
        # its compiled programs kept with the harness's other compile caches
        os.environ["DEV"] = DEVICE
        os.environ["NUM_CPU_THREADS"] = str(threads)
        if self.compile_cache:
            os.environ.setdefault("CACHEDB", os.path.join(self.compile_cache, "tinygrad.db"))
        self.use_here()

    def use_here(self) -> None:
        global tinygrad, Tensor, dtypes
        import tinygrad as tinygrad_module
        import tinygrad.helpers

        tinygrad = tinygrad_module
        Tensor, dtypes = tinygrad_module.Tensor, tinygrad_module.dtypes
        self._jits: dict[tuple[Any, ...], Any] = {}
        self._bfloat16: str | None = None  # why bfloat16 cannot be stored ("" where it can), once asked

    def compile_stats(self) -> dict[str, float]:
        """Kernels tinygrad has generated in this process (its codegen's program cache: Python rewrites, then
        clang; each new shape, dtype or graph is one)."""
        from tinygrad.codegen import to_program_cache

        return {"programs": len(to_program_cache)}

    def runtime_version(self) -> str:
        return str(tinygrad.__version__) if hasattr(tinygrad, "__version__") else str(self.installed_version())

    def devices(self) -> list[str]:
        return ["cpu"]

    def _device(self, device: str) -> None:
        if device != "cpu":
            raise Unsupported(f"tinygrad runs on its CPU device here, not {device!r}")

    def _tensors(self, arrays: Mapping[str, np.ndarray], device: str) -> dict[str, Any]:
        self._device(device)
        if any(value.dtype.name == "bfloat16" for value in arrays.values()) and self._bfloat16_refusal():
            raise Unsupported(self._bfloat16_refusal())
        return {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}

    def _bfloat16_refusal(self) -> str:
        """Why the CPU device cannot store bfloat16 here ("" where it can), asked of the compiler once per process
        with tinygrad's disk cache off: that cache is keyed by the source, not the compiler, so kernels another
        clang compiled would pass where this one fails. Its C renderer writes __bf16, which clang 14 (Debian 12)
        rejects for x86-64."""
        if self._bfloat16 is None:
            try:
                with tinygrad.helpers.Context(CACHELEVEL=0):
                    Tensor([0.5, 1.5, 2.5], dtype=dtypes.float32, device=DEVICE).cast(dtypes.bfloat16).realize()
                self._bfloat16 = ""
            except subprocess.CalledProcessError as exc:
                self._bfloat16 = (f"tinygrad's CPU device cannot store bfloat16 here: {exc.cmd[0]} rejects the "
                                  f"__bf16 its C renderer writes (exit status {exc.returncode})")
        return self._bfloat16

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        function = _FUNCTIONS[impl.impl]
        if mode == "eager":
            return self.evaluate_function(function, arrays, reduction, device)
        tensors = self._tensors(arrays, device)
        names = tuple(sorted(tensors))
        key = (impl.impl, reduction, *((name, tensors[name].shape, tensors[name].dtype) for name in names))
        if key not in self._jits:  # one jit per signature: a later call with new values replays its graph
            self._jits[key] = tinygrad.TinyJit(
                lambda *values: loss_and_grad(function, reduction=reduction, **dict(zip(names, values, strict=True))))
        (loss, grad), evidence = jit_replay(self._jits[key], *(tensors[name] for name in names))
        return Result(loss, grad, evidence)

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        tensors = self._tensors(arrays, device)
        x, y = tensors.pop("x"), tensors.pop("y")
        if not with_grad:
            return Result(function(x, y, reduction, **tensors).realize(), None)
        return Result(*loss_and_grad(function, x, y, reduction, **tensors))

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        if dtype == "bfloat16":
            return f"Tensor({values}, dtype=dtypes.float32).cast(dtypes.bfloat16)"
        return f"Tensor({values}, dtype=dtypes.{dtype})"

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        impl.api_for("pos_weight" in arrays)  # Unsupported for all of them where the API has no pos_weight
        return self.function_derivatives(_FUNCTIONS[impl.impl], arrays, reduction, device, wanted)

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        return derivative_answers(_DERIVATIVES, function, self._tensors(arrays, device), reduction, wanted, arrays)

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        for name in _DTYPE_NAMES:
            if values.dtype == getattr(dtypes, name):
                return name
        return str(values.dtype.name)

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        tensors = self._tensors({"x": arrays["x"], "y": arrays["y"]}, device)
        function = _FUNCTIONS[impl.impl]

        def step(x: Any, y: Any) -> Any:
            if direction == "forward":
                return function(x, y, "mean").realize()
            return loss_and_grad(function, x, y, "mean")

        if mode == "eager":
            return lambda: step(tensors["x"], tensors["y"])
        jit = tinygrad.TinyJit(step)  # fresh: the first call runs eagerly and captures, every later one replays

        def replayed() -> Any:
            if jit.cnt == 0:
                jit(tensors["x"], tensors["y"])
            outputs = jit(tensors["x"], tensors["y"])
            if jit.captured is None:
                raise RuntimeError("TinyJit captured no graph (JIT=0?): it runs eagerly")
            return outputs

        return replayed

    def sync(self, result: Any, device: str) -> None:
        tinygrad.Device[DEVICE].synchronize()

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        self._device(device)
        buffer = Tensor.ones(nbytes // 4, dtype=dtypes.float32, device=DEVICE).contiguous().realize()
        return lambda: buffer.sum().realize()

    def repro_source(self, impl: Implementation, mode: str) -> str:
        function = _FUNCTIONS[impl.impl]
        step = f"loss_and_grad({function.__name__}, x, y, REDUCTION, **options)"
        if mode == "TinyJit":
            step = (f"jit_replay(TinyJit(lambda x, y, *values: loss_and_grad({function.__name__}, x, y, REDUCTION, "
                    f"**dict(zip(options, values)))), x, y, *options.values())[0]")
        driver = f'''
def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    x, y = from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE)
    loss, grad = {step}
    return to_numpy(loss), to_numpy(grad)
'''
        helpers = (weighted_reduction, function, loss_and_grad) + ((jit_replay,) if mode == "TinyJit" else ())
        return _REPRO_HEADER + source_of(from_numpy, to_numpy, *helpers) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        if quantity == "grad_fwd":
            raise Unsupported("tinygrad has no forward-mode autodiff (Tensor.gradient is reverse mode only)")
        return derivative_source(self.framework, _DERIVATIVES, quantity, _REPRO_HEADER,
                                 (from_numpy, to_numpy, weighted_reduction), _FUNCTIONS[impl.impl])
