"""MLX: `mlx.nn.losses.binary_cross_entropy` in both forms (`with_logits=True` on logits, `with_logits=False` on
probabilities), with MLX's own `reduction`; gradients by `mx.value_and_grad` (further derivatives: `mx.jvp`,
`mx.grad`, grad of grad); eager or `mx.compile`.

MLX is lazy: nothing is computed until `mx.eval`, which every path here calls before a result leaves it. float64
exists on the CPU only (Apple's Metal and MLX's CUDA backend have none). The API takes `weights` of the loss's
own shape only (it raises otherwise), so the adapter broadcasts the weight to x's shape first, as a user must.
The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

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

__all__ = ["MlxAdapter"]

mx: ModuleType  # bound by MlxAdapter.use_here, inside the worker process
nn: ModuleType

_WEIGHTS = "weights=None or mx.broadcast_to(w, x.shape) (the API takes the loss's own shape only)"


def from_numpy(values: Any, dtype_name: str) -> Any:
    """Values that are exact in `dtype_name` → an MLX array of that dtype, bit for bit (bfloat16 through its bits:
    `mx.array` of a float64 NumPy array would round it to float32, its default)."""
    values = np.asarray(values)
    if dtype_name == "bfloat16":
        import ml_dtypes

        bits = values.astype(ml_dtypes.bfloat16).view(np.uint16)  # a copy: C-contiguous, 0-d stays 0-d
        return mx.array(bits).view(mx.bfloat16)
    return mx.array(values.astype(dtype_name), dtype=getattr(mx, "bool_" if dtype_name == "bool" else dtype_name))


def to_numpy(values: Any) -> np.ndarray:
    """An MLX array → float64 NumPy, exactly (float16 and bfloat16 through float32, which holds them)."""
    if values.dtype in (mx.float16, mx.bfloat16):
        values = values.astype(mx.float32)
    return np.array(values).astype(np.float64)


def mlx_logits(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    weights = None if weight is None else mx.broadcast_to(weight, x.shape)
    return nn.losses.binary_cross_entropy(x, y, weights=weights, with_logits=True, reduction=reduction)


def mlx_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    weights = None if weight is None else mx.broadcast_to(weight, p.shape)
    return nn.losses.binary_cross_entropy(p, y, weights=weights, with_logits=False, reduction=reduction)


def loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx by mx.value_and_grad, lazily (mx.eval computes them); the loss rides
    along as the auxiliary output."""

    def total(value: Any) -> tuple[Any, Any]:
        loss = function(value, y, reduction, **options)
        return mx.sum(loss), loss

    (_, loss), grad = mx.value_and_grad(total)(x)
    return loss, grad


def forward_tangent(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The reduced loss's tangent along x + t·1 (per element for `none`) by forward mode (mx.jvp)."""
    _, (tangent,) = mx.jvp(lambda value: function(value, y, reduction, **options), [x], [mx.ones_like(x)])
    return tangent


def gradient_wrt(name: str, function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """d(sum of the reduced loss)/d(the argument `name`: y or weight) by mx.grad."""
    arguments = {"y": y, **options}

    def total(value: Any) -> Any:
        given = {**arguments, name: value}
        return mx.sum(function(x, given.pop("y"), reduction, **given))

    return mx.grad(total)(arguments[name])


def second_derivative(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The diagonal of the Hessian wrt x, d(Σ ∂L/∂x)/dx (the loss is elementwise: H is diagonal), grad of grad."""
    first = mx.grad(lambda value: mx.sum(function(value, y, reduction, **options)))
    return mx.grad(lambda value: mx.sum(first(value)))(x)


_FUNCTIONS: dict[str, Callable[..., Any]] = {"mlx.logits": mlx_logits, "mlx.probs": mlx_probs}
# each further derivative: its helper and the arguments before the loss function
_DERIVATIVES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "grad_fwd": (forward_tangent, ()), "grad2": (second_derivative, ()),
    **{f"grad_{name}": (gradient_wrt, (name,)) for name in ("y", "weight")},
}
_REPRO_HEADER = "import mlx.core as mx\nimport mlx.nn as nn\n\n"


class MlxAdapter(Adapter):
    framework = "mlx"
    distributions = ("mlx",)
    companions = ("mlx-cpu", "mlx-metal", "mlx-cuda")
    release_pages: ClassVar[Mapping[str, str]] = {"mlx": "https://github.com/ml-explore/mlx/releases/tag/v{version}"}
    modes = ("eager", "mx.compile")
    implementations = (
        Implementation(
            "mlx.logits", "logits",
            api=f"mlx.nn.losses.binary_cross_entropy(x, y, {_WEIGHTS}, with_logits=True, reduction=r)",
        ),
        Implementation(
            "mlx.probs", "probs",
            api=f"mlx.nn.losses.binary_cross_entropy(p, y, {_WEIGHTS}, with_logits=False, reduction=r)",
            same_as="mlx.logits", relation="probs_logits",
        ),
    )

    def _load(self, threads: int) -> None:
        # MLX has no thread setting: a stream's operations run one after another on that stream's own thread,
        # and its CPU kernels (elementwise ops, reductions) are single-threaded; `threads` changes nothing here.
        self.use_here()

    def use_here(self) -> None:
        global mx, nn
        import mlx.core as mx_module
        import mlx.nn as nn_module

        mx, nn = mx_module, nn_module
        self._traces = 0  # Python traces of mx.compile'd functions: each compiles a graph

    def runtime_version(self) -> str:
        return str(mx.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if mx.is_available(mx.gpu) else ["cpu"]

    def _device(self, device: str, arrays: Mapping[str, np.ndarray] | None = None) -> Any:
        if device == "gpu" and mx.is_available(mx.gpu):
            if arrays and any(value.dtype == np.float64 for value in arrays.values()):
                raise Unsupported("mlx: float64 runs on the CPU only (its GPU backends have no float64)")
            return mx.gpu
        if device == "cpu":
            return mx.cpu
        raise Unsupported(f"mlx has no {device!r} device here")

    def thread_settings(self) -> dict[str, int]:
        return {"stream_threads": 1}  # one thread per stream; MLX has no setting for it

    def compile_stats(self) -> dict[str, float]:
        return {"programs": self._traces}

    def _tensors(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        function = _FUNCTIONS[impl.impl]
        if mode == "eager":
            return self.evaluate_function(function, arrays, reduction, device)
        with mx.stream(self._device(device, arrays)):
            tensors = self._tensors(arrays)
            x, y = tensors.pop("x"), tensors.pop("y")
            step = self._compiled_step(function, reduction, sorted(tensors))
            step(x, y, *tensors.values())  # the first call traces and compiles the graph
            before = self._traces
            loss, grad = step(x, y, *tensors.values())  # the same shapes again: the compiled graph, no trace
            mx.eval(loss, grad)
        if self._traces != before:
            raise RuntimeError("mx.compile traced the function again on the same inputs (it ran eagerly)")
        return Result(loss, grad, "compiled calls without a trace: 1")

    def _compiled_step(self, function: Callable[..., Any], reduction: str,
                       names: list[str]) -> Callable[..., Any]:
        """A fresh `mx.compile` of loss_and_grad whose Python body counts its traces: a call of the compiled
        function that runs the body ran no compiled graph (mx.disable_compile, MLX_DISABLE_COMPILE)."""

        def step(x: Any, y: Any, *options: Any) -> tuple[Any, Any]:
            self._traces += 1
            return loss_and_grad(function, x, y, reduction, **dict(zip(names, options, strict=True)))

        return mx.compile(step)

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        with mx.stream(self._device(device, arrays)):
            tensors = self._tensors(arrays)
            x, y = tensors.pop("x"), tensors.pop("y")
            if not with_grad:
                loss = function(x, y, reduction, **tensors)
                mx.eval(loss)
                return Result(loss, None)
            loss, grad = loss_and_grad(function, x, y, reduction, **tensors)
            mx.eval(loss, grad)
        return Result(loss, grad)

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        return f"mx.array({values}, dtype=mx.{dtype})"

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        impl.api_for("pos_weight" in arrays)  # Unsupported for all of them: the API has no pos_weight
        return self.function_derivatives(_FUNCTIONS[impl.impl], arrays, reduction, device, wanted)

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        with mx.stream(self._device(device, arrays)):
            answers = derivative_answers(_DERIVATIVES, function, self._tensors(arrays), reduction, wanted, arrays)
            for name, answer in answers.items():
                if not isinstance(answer, BaseException):
                    try:  # MLX raises at mx.eval, not when the graph is built
                        mx.eval(answer)
                    except Exception as exc:
                        answers[name] = exc
        return answers

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(values.dtype).removeprefix("mlx.core.").removesuffix("_")

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        where = self._device(device, arrays)
        function = _FUNCTIONS[impl.impl]
        x, y = (from_numpy(arrays[name], arrays[name].dtype.name) for name in ("x", "y"))
        mx.eval(x, y)

        def step(x: Any, y: Any) -> Any:
            if direction == "forward":
                return function(x, y, "mean")
            return loss_and_grad(function, x, y, "mean")

        def traced(x: Any, y: Any) -> Any:
            self._traces += 1
            return step(x, y)

        if mode == "eager":
            def eager() -> Any:
                with mx.stream(where):
                    return step(x, y)  # lazy: `sync` (mx.eval) computes it inside the timed call

            return eager
        compiled = mx.compile(traced)  # fresh: its first call traces and compiles

        def checked() -> Any:
            before = self._traces
            with mx.stream(where):
                result = compiled(x, y)
            if self._traces != before and getattr(checked, "warm", False):
                raise RuntimeError("mx.compile traced the function again (it ran eagerly)")
            checked.warm = True  # type: ignore[attr-defined]
            return result

        return checked

    def sync(self, result: Any, device: str) -> None:
        mx.eval(result)

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        where = self._device(device)
        buffer = mx.ones(nbytes // 4, dtype=mx.float32)
        mx.eval(buffer)

        def read() -> Any:
            with mx.stream(where):
                return mx.sum(buffer)

        return read

    def allocator_peak(self, device: str, run: Callable[[], Any]) -> int:
        mx.synchronize()
        before = mx.get_active_memory()
        mx.reset_peak_memory()
        self.sync(run(), device)
        return int(mx.get_peak_memory() - before)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        step = "loss_and_grad_of"
        if mode == "mx.compile":
            step = "mx.compile(loss_and_grad_of)"
        function = _FUNCTIONS[impl.impl].__name__
        driver = f'''
def loss_and_grad_of(x, y, *weight):
    return loss_and_grad({function}, x, y, REDUCTION, **({{"weight": weight[0]}} if weight else {{}}))


def run(x, y, weight, pos_weight):
    options = [from_numpy(weight, W_DTYPE)] if weight is not None else []
    loss, grad = {step}(from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE), *options)
    mx.eval(loss, grad)
    return to_numpy(loss), to_numpy(grad)
'''
        return _REPRO_HEADER + source_of(from_numpy, to_numpy, _FUNCTIONS[impl.impl], loss_and_grad) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        function = _FUNCTIONS[impl.impl]
        return derivative_source(self.framework, _DERIVATIVES, quantity, _REPRO_HEADER,
                                 (from_numpy, to_numpy, loss_and_grad), function)
