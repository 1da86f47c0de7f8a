"""JAX: `optax.losses.sigmoid_binary_cross_entropy`, the `jax.nn.log_sigmoid` formula, `jax.scipy.special.xlogy`
/ `xlog1py` for probabilities (also of `jax.nn.sigmoid(x)` inside the function), `optax.softmax_cross_entropy` on
two classes, `optax.losses.sigmoid_focal_loss` at gamma 0 and the worked example's log-sum-exp formula; gradients
by `jax.vjp` (further derivatives: `jax.jvp`, `jax.grad`, forward over reverse); eager or `jax.jit`. Float64 needs
x64 mode, which the adapter turns on.

The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

import os
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

__all__ = ["JaxAdapter"]

jax: ModuleType  # bound by JaxAdapter._load, inside the worker process
jnp: ModuleType
optax: ModuleType

_REDUCE = "; w·l, then jnp.mean or jnp.sum"
_LOG_SIGMOID = "-(y·jax.nn.log_sigmoid(x) + (1-y)·jax.nn.log_sigmoid(-x))"
_LOG_SIGMOID_POS = "-(p·y·jax.nn.log_sigmoid(x) + (1-y)·jax.nn.log_sigmoid(-x))"
_LSE = ("worked example: max_val = jnp.maximum(-x, 0); x - x·y + max_val + log(exp(-max_val) + exp(-x - max_val))"
        "; × weight; jnp.mean / jnp.sum")
_LSE_POS = ("worked example: max_val = jnp.maximum(-x, 0); lw = 1 + (p - 1)·y; x - x·y + lw·(log(exp(-max_val) + "
            "exp(-x - max_val)) + max_val); × weight; jnp.mean / jnp.sum")


def from_numpy(values: Any, dtype_name: str, device: Any = None) -> Any:
    """Values that are exact in `dtype_name` → a JAX array of that dtype (no rounding happens). The cast is
    NumPy's and the copy `jax.device_put`'s: neither compiles anything (`jnp.asarray` and `.astype` would compile
    a program per shape and dtype, which is not the loss's work)."""
    return jax.device_put(np.asarray(values, dtype=jnp.dtype(dtype_name)), device)


def to_numpy(values: Any) -> np.ndarray:
    return np.asarray(values).astype(np.float64)


def weighted_reduction(loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l, then JAX's own mean or sum, as users reduce (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = weight * loss
    if reduction == "sum":
        return jnp.sum(loss)
    if reduction == "mean":
        return jnp.mean(loss)
    return loss


def jax_log_sigmoid(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    p = 1 if pos_weight is None else pos_weight
    loss = -(p * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    return weighted_reduction(loss, reduction, weight)


def jax_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    if pos_weight is not None:  # optax has no pos_weight: the log_sigmoid composition
        return jax_log_sigmoid(x, y, reduction, weight, pos_weight)
    return weighted_reduction(optax.losses.sigmoid_binary_cross_entropy(x, y), reduction, weight)


def jax_probs(q: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    p = 1 if pos_weight is None else pos_weight
    loss = -(p * jax.scipy.special.xlogy(y, q) + jax.scipy.special.xlog1py(1 - y, -q))
    return weighted_reduction(loss, reduction, weight)


def jax_probs_of_sigmoid(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    return jax_probs(jax.nn.sigmoid(x), y, reduction, weight, pos_weight)


def jax_softmax2(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    """Two-class softmax cross-entropy on logits [0, x] with probability targets [1 − y, y]: BCE by identity."""
    logits = jnp.stack([jnp.zeros_like(x), x], -1)
    targets = jnp.stack([1 - y, y], -1)
    return weighted_reduction(optax.softmax_cross_entropy(logits, targets), reduction, weight)


def jax_focal(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    """The focal loss at gamma 0 (no alpha) is BCE: its factor (1 − p_t)^0 is 1."""
    return weighted_reduction(optax.losses.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0), reduction, weight)


def jax_lse_formula(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    max_val = jnp.maximum(-x, 0)
    log_term = jnp.log(jnp.exp(-max_val) + jnp.exp(-x - max_val))
    if pos_weight is None:
        loss = x - x * y + max_val + log_term
    else:
        loss = x - x * y + (1 + (pos_weight - 1) * y) * (log_term + max_val)
    if weight is not None:
        loss = loss * weight
    return jnp.mean(loss) if reduction == "mean" else jnp.sum(loss) if reduction == "sum" else loss


def loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through jax.vjp (a cotangent of ones)."""
    loss, pullback = jax.vjp(lambda value: function(value, y, reduction, **options), x)
    (grad,) = pullback(jnp.ones_like(loss))
    return loss, grad


def forward_tangent(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The reduced loss's tangent along x + t·1 (per element for `none`) by forward mode (jax.jvp)."""
    _, tangent = jax.jvp(lambda value: function(value, y, reduction, **options), (x,), (jnp.ones_like(x),))
    return tangent


def gradient_wrt(name: str, function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """d(sum of the reduced loss)/d(the argument `name`: y, weight or pos_weight) by jax.grad."""
    arguments = {"y": y, **options}

    def total(value: Any) -> Any:
        given = {**arguments, name: value}
        return jnp.sum(function(x, given.pop("y"), reduction, **given))

    return jax.grad(total)(arguments[name])


def second_derivative(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The diagonal of the Hessian wrt x, H·1 (the loss is elementwise: H is diagonal), forward over reverse."""
    _, diagonal = jax.jvp(lambda value: loss_and_grad(function, value, y, reduction, **options)[1], (x,),
                          (jnp.ones_like(x),))
    return diagonal


# JAX's monitoring events: counter and seconds each adds to (every XLA compile fires the first, a persistent-cache
# hit included; every lowering the second; every cache hit the third)
_COMPILE_EVENTS: dict[str, tuple[str | None, str | None]] = {
    "/jax/core/compile/backend_compile_duration": ("programs", "compile_s"),
    "/jax/core/compile/jaxpr_to_mlir_module_duration": (None, "lower_s"),
    "/jax/compilation_cache/cache_retrieval_time_sec": ("cached", None),
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "jax.logits": jax_logits, "jax.probs": jax_probs, "jax.log_sigmoid": jax_log_sigmoid,
    "jax.lse_formula": jax_lse_formula, "jax.softmax2": jax_softmax2, "jax.focal": jax_focal,
    "jax.probs_of_sigmoid": jax_probs_of_sigmoid,
}
_HELPERS: dict[str, tuple[Callable[..., Any], ...]] = {
    "jax.logits": (weighted_reduction, jax_log_sigmoid), "jax.probs": (weighted_reduction,),
    "jax.log_sigmoid": (weighted_reduction,), "jax.softmax2": (weighted_reduction,),
    "jax.focal": (weighted_reduction,), "jax.probs_of_sigmoid": (weighted_reduction, jax_probs),
}
# each further derivative: its helper and the arguments before the loss function
_DERIVATIVES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "grad_fwd": (forward_tangent, ()), "grad2": (second_derivative, ()),
    **{f"grad_{name}": (gradient_wrt, (name,)) for name in ("y", "weight", "pos_weight")},
}
_REPRO_HEADER = ('import jax\n\njax.config.update("jax_enable_x64", True)\nimport jax.numpy as jnp\n'
                 'import jax.scipy.special\nimport optax\n\n')


class JaxAdapter(Adapter):
    framework = "jax"
    distributions = ("jax",)
    companions = ("jaxlib", "optax")
    release_pages: ClassVar[Mapping[str, str]] = {
        "jax": "https://github.com/jax-ml/jax/releases/tag/jax-v{version}",
        "jaxlib": "https://github.com/jax-ml/jax/releases/tag/jax-v{version}",
        "optax": "https://github.com/google-deepmind/optax/releases/tag/v{version}",
    }
    # jax before 0.4.3x did not bring its jaxlib: its `cpu` extra does
    pip_spellings: ClassVar[Mapping[str, str]] = {"jax": "jax[cpu]=={version}"}
    modes = ("eager", "jax.jit")
    implementations = (
        Implementation(
            "jax.logits", "logits",
            api="optax.losses.sigmoid_binary_cross_entropy(x, y)" + _REDUCE,
            api_pos_weight=f"composed {_LOG_SIGMOID_POS} (optax has no pos_weight)" + _REDUCE,
        ),
        Implementation(
            "jax.probs", "probs",
            api="composed -(jax.scipy.special.xlogy(y, p) + jax.scipy.special.xlog1py(1-y, -p))" + _REDUCE,
            api_pos_weight="composed -(p·xlogy(y, q) + xlog1py(1-y, -q)) with jax.scipy.special" + _REDUCE,
            same_as="jax.logits", relation="probs_logits",
        ),
        Implementation("jax.log_sigmoid", "logits", api=f"composed {_LOG_SIGMOID}" + _REDUCE,
                       api_pos_weight=f"composed {_LOG_SIGMOID_POS}" + _REDUCE),
        Implementation("jax.lse_formula", "logits", api=_LSE, api_pos_weight=_LSE_POS, formula=True),
        Implementation("jax.softmax2", "logits",
                       api="optax.softmax_cross_entropy(stack([0, x], -1), stack([1 - y, y], -1))" + _REDUCE,
                       same_as="jax.logits", relation="softmax2", runs_on="relation"),
        Implementation("jax.focal", "logits",
                       api="optax.losses.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0)" + _REDUCE,
                       same_as="jax.logits", relation="focal_gamma0", runs_on="relation"),
        Implementation(
            "jax.probs_of_sigmoid", "logits",
            api="composed -(xlogy(y, q) + xlog1py(1-y, -q)) with q = jax.nn.sigmoid(x)" + _REDUCE,
            api_pos_weight="composed -(p·xlogy(y, q) + xlog1py(1-y, -q)) with q = jax.nn.sigmoid(x)" + _REDUCE,
            sigmoid_inside=True, runs_on="sigmoid",
        ),
    )

    def _load(self, threads: int) -> None:
        global jax, optax
        # JAX has no public intra-op thread setting; XLA's flag keeps its CPU client to one Eigen pool thread.
        if threads == 1:
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        # allocate GPU memory as needed, not 75 % up front: other frameworks' workers share the device
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.use_here()
        jax.config.update("jax_enable_x64", True)
        if self.compile_cache:  # eager dispatch compiles each primitive per shape and dtype: keep them
            jax.config.update("jax_compilation_cache_dir", self.compile_cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        import jax.monitoring
        import optax as optax_module

        optax = optax_module
        jax.monitoring.register_event_duration_secs_listener(self._count_compile)

    def use_here(self) -> None:
        global jax, jnp
        import jax as jax_module
        import jax.numpy as jnp_module
        import jax.scipy.special
        import jax.stages

        jax, jnp = jax_module, jnp_module
        self._compiled_calls = 0
        self._compiles: dict[str, float] = {"programs": 0, "cached": 0, "compile_s": 0.0, "lower_s": 0.0}

    def _count_compile(self, event: str, duration: float, **_: Any) -> None:
        """JAX's monitoring events: every XLA compile (a hit in the persistent cache is one too), every lowering."""
        count, seconds = _COMPILE_EVENTS.get(event, (None, None))
        if count:
            self._compiles[count] += 1
        if seconds:
            self._compiles[seconds] += duration

    def compile_stats(self) -> dict[str, float]:
        return dict(self._compiles)

    def runtime_version(self) -> str:
        return str(jax.__version__)

    def _gpu_devices(self) -> list[Any]:
        try:
            return list(jax.devices("gpu"))
        except RuntimeError:
            return []

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if self._gpu_devices() else ["cpu"]

    def _device(self, device: str) -> Any:
        if device == "cpu":
            return jax.devices("cpu")[0]
        gpus = self._gpu_devices()
        if device == "gpu" and gpus:
            return gpus[0]
        raise Unsupported(f"jax has no {device!r} device here")

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        function = _FUNCTIONS[impl.impl]
        if mode == "eager":
            return self.evaluate_function(function, arrays, reduction, device)
        where = self._device(device)
        tensors = {name: from_numpy(value, value.dtype.name, where) for name, value in arrays.items()}
        x, y = tensors.pop("x"), tensors.pop("y")
        # Lower and compile explicitly: the executable that runs is XLA's, never an op-by-op fallback; it is
        # called through a counter, so a result that did not come from it has no evidence.
        step = jax.jit(loss_and_grad, static_argnames=("function", "reduction"))
        compiled = step.lower(function=function, x=x, y=y, reduction=reduction, **tensors).compile()
        if not isinstance(compiled, jax.stages.Compiled):
            raise RuntimeError(f"jax.jit(...).lower(...).compile() gave {type(compiled).__name__}, not Compiled")
        before = self._compiled_calls
        loss, grad = self._counted(compiled)(x=x, y=y, **tensors)
        jax.block_until_ready(grad)
        return Result(loss, grad, f"XLA executable executions: {self._compiled_calls - before}"
                      if self._compiled_calls > before else "")

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        if not jax.config.jax_enable_x64 and any(value.dtype == np.float64 for value in arrays.values()):
            raise Unsupported("jax_enable_x64 is off in this process: JAX would compute float64 in 32 bits; turn it "
                              "on (jax.config.update('jax_enable_x64', True)) to check it")
        where = self._device(device)
        tensors = {name: from_numpy(value, value.dtype.name, where) for name, value in arrays.items()}
        x, y = tensors.pop("x"), tensors.pop("y")
        if not with_grad:
            return Result(jax.block_until_ready(function(x, y, reduction, **tensors)), None)
        loss, grad = loss_and_grad(function, x, y, reduction, **tensors)
        return Result(loss, jax.block_until_ready(grad))

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        return f"jnp.array({values}, dtype=jnp.{dtype})"

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        impl.api_for("pos_weight" in arrays)  # Unsupported for all of them where the API has no pos_weight
        return self.function_derivatives(_FUNCTIONS[impl.impl], arrays, reduction, device, wanted)

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        tensors = {name: from_numpy(value, value.dtype.name, self._device(device)) for name, value in arrays.items()}
        return derivative_answers(_DERIVATIVES, function, tensors, reduction, wanted, arrays)

    def _counted(self, compiled: Any) -> Callable[..., Any]:
        """The compiled executable, counting its executions (as torch's counting backend counts its graph's)."""

        def run(**arguments: Any) -> Any:
            outputs = compiled(**arguments)
            self._compiled_calls += 1
            return outputs

        return run

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(values.dtype)

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        where = self._device(device)
        x, y = (from_numpy(arrays[name], arrays[name].dtype.name, where) for name in ("x", "y"))
        function = _FUNCTIONS[impl.impl]

        def mean_loss(x: Any, y: Any) -> Any:
            return function(x, y, "mean")

        step = mean_loss if direction == "forward" else jax.value_and_grad(mean_loss)
        if mode == "jax.jit":
            step = jax.jit(step)  # a fresh jit: its first call traces and compiles
        return lambda: step(x, y)

    def sync(self, result: Any, device: str) -> None:
        jax.block_until_ready(result)

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        buffer = jax.device_put(jnp.ones(nbytes // 4, dtype=jnp.float32), self._device(device))
        total = jax.jit(jnp.sum)
        return lambda: total(buffer)

    def allocator_peak(self, device: str, run: Callable[[], Any]) -> int:
        stats = self._device(device).memory_stats() or {}
        if "peak_bytes_in_use" not in stats:
            raise Unsupported(f"jax reports no allocator statistics on {device!r}")
        before, earlier_peak = stats["bytes_in_use"], stats["peak_bytes_in_use"]
        self.sync(run(), device)
        peak = self._device(device).memory_stats()["peak_bytes_in_use"]
        if peak <= earlier_peak:  # JAX's peak cannot be reset: a smaller peak hides under an earlier one
            raise Unsupported("below an earlier peak of this process (JAX cannot reset its peak statistic)")
        return int(peak - before)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        step = "loss_and_grad"
        if mode == "jax.jit":
            step = 'jax.jit(loss_and_grad, static_argnames=("function", "reduction"))'
        function = _FUNCTIONS[impl.impl].__name__
        driver = f'''
def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    loss, grad = {step}(function={function}, x=from_numpy(x, DTYPE), y=from_numpy(y, Y_DTYPE), reduction=REDUCTION,
                        **options)
    return to_numpy(loss), to_numpy(grad)
'''
        helpers = _HELPERS.get(impl.impl, ())
        return _REPRO_HEADER + source_of(from_numpy, to_numpy, *helpers, _FUNCTIONS[impl.impl], loss_and_grad) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        function = _FUNCTIONS[impl.impl]
        return derivative_source(self.framework, _DERIVATIVES, quantity, _REPRO_HEADER,
                                 (from_numpy, to_numpy, *_HELPERS.get(impl.impl, ()), loss_and_grad), function)
