"""Keras 3 on each of its backends: `keras.ops.binary_crossentropy`, `keras.losses.binary_crossentropy` and the
`keras.losses.BinaryCrossentropy` class (both forms; the class also with `sample_weight` and `label_smoothing`);
gradients by the backend's own autodiff (TensorFlow `GradientTape`, `jax.vjp`, torch autograd; the NumPy backend
has none); eager.

A process holds one Keras backend: `KERAS_BACKEND` is read when Keras is first imported. Each backend is its own
framework (`keras_tensorflow`, `keras_jax`, `keras_torch`, `keras_numpy`) and so its own worker; `_load` refuses
where Keras was already imported on another backend. On JAX, torch and NumPy each implementation names the same
API on TensorFlow, Keras's reference backend (`same_api_on`), which it must equal.

The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

import ml_dtypes
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

__all__ = ["KerasAdapter", "KerasJaxAdapter", "KerasNumpyAdapter", "KerasTensorflowAdapter", "KerasTorchAdapter"]

keras: ModuleType  # bound by KerasAdapter._load, inside the worker process
tf: ModuleType  # the backend's own module, for its autodiff (bound for that backend only)
jax: ModuleType
torch: ModuleType

_REDUCE = "; w·l, then keras.ops.mean or keras.ops.sum"
_CLASS = ("keras.losses.BinaryCrossentropy(from_logits={}, reduction=None | 'sum_over_batch_size' | 'sum')"
          "(y[..., None], {}[..., None], sample_weight=w)")


def from_numpy(values: Any, dtype_name: str) -> Any:
    """float64 values that are exact in `dtype_name` → the backend's tensor of that dtype (no rounding happens).
    The dtype is given: Keras converts a float64 array given without one to float32 on JAX, torch and NumPy."""
    if dtype_name == "bfloat16" and keras.backend.backend() == "torch":  # torch takes no NumPy bfloat16 array
        return keras.ops.cast(keras.ops.convert_to_tensor(np.asarray(values, dtype=np.float64)), dtype_name)
    if dtype_name in ("int64", "int32", "bool"):  # labels of those dtypes: exact as they are
        return keras.ops.convert_to_tensor(np.asarray(values).astype(dtype_name), dtype=dtype_name)
    # cast by NumPy (ml_dtypes for bfloat16), then a copy: no per-shape program on JAX
    return keras.ops.convert_to_tensor(np.asarray(values, dtype=np.float64).astype(ml_dtypes.finfo(dtype_name).dtype),
                                       dtype=dtype_name)


def to_numpy(values: Any) -> np.ndarray:
    if keras.backend.backend() == "tensorflow":  # convert_to_numpy raises for a 0-d bfloat16 tensor there
        values = keras.ops.cast(values, "float64")  # exact
    return np.asarray(keras.ops.convert_to_numpy(values)).astype(np.float64)


def weighted_reduction(loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l, then Keras's own mean or sum, as users reduce (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = weight * loss
    if reduction == "sum":
        return keras.ops.sum(loss)
    if reduction == "mean":
        return keras.ops.mean(loss)
    return loss


def ops_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return weighted_reduction(keras.ops.binary_crossentropy(y, p), reduction, weight)


def ops_logits(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return weighted_reduction(keras.ops.binary_crossentropy(y, x, from_logits=True), reduction, weight)


def losses_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    # Keras averages over the last axis: a trailing axis of size 1 makes the loss per element
    return weighted_reduction(keras.losses.binary_crossentropy(y[..., None], p[..., None]), reduction, weight)


def losses_logits(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    loss = keras.losses.binary_crossentropy(y[..., None], x[..., None], from_logits=True)
    return weighted_reduction(loss, reduction, weight)


def keras_class(from_logits: bool, prediction: Any, y: Any, reduction: str, weight: Any = None,
                label_smoothing: float = 0.0) -> Any:
    """The loss class on `prediction` of shape y.shape + (1,) (a trailing axis of size 1: the loss per element)."""
    keras_reduction = {"none": None, "mean": "sum_over_batch_size", "sum": "sum"}[reduction]
    loss_object = keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=keras_reduction,
                                                  label_smoothing=label_smoothing)
    sample_weight = None if weight is None else keras.ops.broadcast_to(weight, keras.ops.shape(y))
    return loss_object(y[..., None], prediction, sample_weight=sample_weight)


def class_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(False, p[..., None], y, reduction, weight)


def class_logits(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(True, x[..., None], y, reduction, weight)


def smoothing(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(True, x[..., None], y, reduction, weight, label_smoothing=0.25)


def loss_and_grad_tensorflow(function: Callable[..., Any], x: Any, y: Any, reduction: str,
                             **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through tf.GradientTape."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = function(x, y, reduction, **options)
        total = tf.reduce_sum(loss)
    return loss, tape.gradient(total, x)


def loss_and_grad_jax(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through jax.vjp (a cotangent of ones)."""
    loss, pullback = jax.vjp(lambda value: function(value, y, reduction, **options), x)
    (grad,) = pullback(jax.device_put(np.ones(loss.shape, loss.dtype)))  # no per-shape program for the ones
    return loss, grad


def loss_and_grad_torch(function: Callable[..., Any], x: Any, y: Any, reduction: str,
                        **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through torch autograd."""
    x = x.detach().requires_grad_(True)
    loss = function(x, y, reduction, **options)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def loss_and_grad_numpy(function: Callable[..., Any], x: Any, y: Any, reduction: str,
                        **options: Any) -> tuple[Any, Any]:
    """The reduced loss; the NumPy backend has no autodiff (no gradient)."""
    return function(x, y, reduction, **options), None


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ops_probs": ops_probs, "ops_logits": ops_logits, "losses_probs": losses_probs, "losses_logits": losses_logits,
    "class_probs": class_probs, "class_logits": class_logits, "smoothing": smoothing,
}
_HELPERS: dict[str, tuple[Callable[..., Any], ...]] = {
    "ops_probs": (weighted_reduction,), "ops_logits": (weighted_reduction,), "losses_probs": (weighted_reduction,),
    "losses_logits": (weighted_reduction,), "class_probs": (keras_class,), "class_logits": (keras_class,),
    "smoothing": (keras_class,),
}
_GRADIENTS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "tensorflow": loss_and_grad_tensorflow, "jax": loss_and_grad_jax, "torch": loss_and_grad_torch,
    "numpy": loss_and_grad_numpy,
}
# JAX's monitoring events: the counter and the seconds each adds to (as the JAX adapter reads them)
_COMPILE_EVENTS: dict[str, tuple[str | None, str | None]] = {
    "/jax/core/compile/backend_compile_duration": ("programs", "compile_s"),
    "/jax/core/compile/jaxpr_to_mlir_module_duration": (None, "lower_s"),
    "/jax/compilation_cache/cache_retrieval_time_sec": ("cached", None),
}
# what a reproducer imports: the backend chosen before Keras (x64 on for JAX before any array exists)
_BACKEND_IMPORTS = {
    "tensorflow": "import tensorflow as tf\n",
    "jax": 'import jax\n\njax.config.update("jax_enable_x64", True)\nimport jax.numpy\n',
    "torch": "import torch\n",
    "numpy": "",
}


def _implementations(framework: str, differentiable: bool = True) -> tuple[Implementation, ...]:
    """The same seven implementations on every backend; off TensorFlow each names its TensorFlow twin. Each Keras
    op run eagerly on JAX compiles an XLA program per shape and dtype (four minutes over the default cases), so,
    as the compiled paths do, they run on the `path`-tagged cases by default and on every case with --full."""
    reference = framework != "keras_tensorflow"

    def implementation(name: str, input_form: str, api: str, **fields: Any) -> Implementation:
        fields.setdefault("runs_on", "path")
        same = f"{fields.pop('same_as')}" if "same_as" in fields else None
        return Implementation(f"{framework}.{name}", input_form,  # type: ignore[arg-type]
                              api=api, differentiable=differentiable,
                              same_as=None if same is None else f"{framework}.{same}",
                              same_api_on=f"keras_tensorflow.{name}" if reference else None, **fields)

    return (
        implementation("ops_probs", "probs", "keras.ops.binary_crossentropy(y, p)" + _REDUCE,
                       same_as="ops_logits", relation="probs_logits"),
        implementation("ops_logits", "logits", "keras.ops.binary_crossentropy(y, x, from_logits=True)" + _REDUCE),
        implementation("losses_probs", "probs",
                       "keras.losses.binary_crossentropy(y[..., None], p[..., None]) (trailing axis: per element)"
                       + _REDUCE, same_as="losses_logits", relation="probs_logits"),
        implementation("losses_logits", "logits",
                       "keras.losses.binary_crossentropy(y[..., None], x[..., None], from_logits=True) (trailing "
                       "axis: per element)" + _REDUCE),
        # the loss class converts its inputs to its own dtype (floatx, float32) before computing
        implementation("class_probs", "probs", _CLASS.format("False", "p"), compute_dtype="float32",
                       same_as="class_logits", relation="probs_logits"),
        implementation("class_logits", "logits", _CLASS.format("True", "x"), compute_dtype="float32"),
        implementation("smoothing", "logits",
                       _CLASS.format("True, label_smoothing=0.25", "x") + " (judged on the smoothed labels)",
                       compute_dtype="float32", same_as="class_logits", relation="label_smoothing",
                       runs_on="relation"),
    )


class KerasAdapter(Adapter):
    """Keras on one backend (`backend`, the value of KERAS_BACKEND); the subclasses name it."""

    backend: ClassVar[str]
    distributions = ("keras",)
    release_pages: ClassVar[Mapping[str, str]] = {"keras": "https://github.com/keras-team/keras/releases/tag/v{version}"}
    # a process holds one Keras backend: this adapter cannot share a process with Keras on another one
    own_process: ClassVar[bool] = True

    @classmethod
    def is_available(cls) -> bool:
        from importlib.util import find_spec

        return find_spec("keras") is not None and find_spec(cls.backend) is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        return f"{cls.framework} needs keras and {cls.backend}; install them (pip install 'bce-harness[keras]')"

    def _load(self, threads: int) -> None:
        self._refuse_another_backend()
        os.environ["KERAS_BACKEND"] = self.backend
        if self.backend == "tensorflow":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.backend == "jax":
            if threads == 1:  # as the JAX adapter: one Eigen pool thread
                os.environ.setdefault("XLA_FLAGS",
                                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
            import jax as jax_module

            jax_module.config.update("jax_enable_x64", True)  # before Keras makes any array
            import jax.monitoring

            # JAX's monitoring events, as the JAX adapter counts them: where the time of an eager call goes
            jax.monitoring.register_event_duration_secs_listener(self._count_compile)
            if self.compile_cache:  # eager dispatch compiles each primitive per shape and dtype: keep them
                jax_module.config.update("jax_compilation_cache_dir", self.compile_cache)
                jax_module.config.update("jax_persistent_cache_min_compile_time_secs", 0)
                jax_module.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        self.use_here()
        if self.backend == "tensorflow":
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        elif self.backend == "torch":
            torch.set_num_threads(threads)

    _compiles: dict[str, float] | None = None

    def _count_compile(self, event: str, duration: float, **_: Any) -> None:
        """Every XLA compile (a persistent-cache hit is one too), every cache hit, and the seconds they took."""
        counts = self._compiles if self._compiles is not None else {}
        self._compiles = counts
        count, seconds = _COMPILE_EVENTS.get(event, (None, None))
        if count:
            counts[count] = counts.get(count, 0) + 1
        if seconds:
            counts[seconds] = counts.get(seconds, 0.0) + duration

    def compile_stats(self) -> dict[str, float]:
        return dict(self._compiles or {})

    def _refuse_another_backend(self) -> None:
        """Keras reads KERAS_BACKEND once, at its first import: another backend's Keras here cannot be changed."""
        if "keras" in sys.modules:
            current = sys.modules["keras"].backend.backend()
            if current != self.backend:
                raise Unsupported(f"{self.framework}: Keras is already imported on the {current!r} backend in this "
                                  f"process; run {self.framework} in its own process (one Keras backend each)")

    def use_here(self) -> None:
        global keras, tf, jax, torch
        self._refuse_another_backend()
        os.environ.setdefault("KERAS_BACKEND", self.backend)
        import keras as keras_module

        if keras_module.backend.backend() != self.backend:
            raise Unsupported(f"{self.framework}: Keras runs on {keras_module.backend.backend()!r} here, not "
                              f"{self.backend!r}; set KERAS_BACKEND={self.backend} before importing keras")
        keras = keras_module
        if self.backend == "tensorflow":
            import tensorflow as tf_module

            tf = tf_module
        elif self.backend == "jax":
            import jax as jax_module
            import jax.numpy

            jax = jax_module
        elif self.backend == "torch":
            import torch as torch_module

            torch = torch_module

    def runtime_version(self) -> str:
        return str(keras.__version__)

    def devices(self) -> list[str]:
        return ["cpu"]  # the GPU is not audited through Keras yet

    def _check_device(self, device: str) -> None:
        if device != "cpu":
            raise Unsupported(f"{self.framework}: the adapter runs Keras on the CPU only, not {device!r}")

    def _tensors(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        return self.evaluate_function(_FUNCTIONS[impl.impl.split(".", 1)[1]], arrays, reduction, device)

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        self._check_device(device)
        with keras.device("cpu:0"):
            tensors = self._tensors(arrays)
            x, y = tensors.pop("x"), tensors.pop("y")
            if not with_grad:
                return Result(function(x, y, reduction, **tensors), None)
            return Result(*_GRADIENTS[self.backend](function, x, y, reduction, **tensors))

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(keras.backend.standardize_dtype(values.dtype))

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        self._check_device(device)
        if direction == "forward_backward" and not impl.differentiable:
            raise Unsupported(f"{self.framework}: the {self.backend} backend has no autodiff")
        with keras.device("cpu:0"):
            x, y = (from_numpy(arrays[name], arrays[name].dtype.name) for name in ("x", "y"))
        function = _FUNCTIONS[impl.impl.split(".", 1)[1]]
        gradient = _GRADIENTS[self.backend]

        def run() -> Any:
            with keras.device("cpu:0"):
                if direction == "forward":
                    return function(x, y, "mean")
                return gradient(function, x, y, "mean")

        return run

    def sync(self, result: Any, device: str) -> None:
        if self.backend == "jax":
            jax.block_until_ready(result)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        name = impl.impl.split(".", 1)[1]
        gradient = _GRADIENTS[self.backend]
        header = (f'import os\n\nos.environ["KERAS_BACKEND"] = "{self.backend}"\nimport ml_dtypes\nimport numpy as np\n'
                  f"{_BACKEND_IMPORTS[self.backend]}import keras\n\n")
        grad = "None if grad is None else to_numpy(grad)"
        driver = f'''

def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    with keras.device("cpu:0"):
        loss, grad = {gradient.__name__}({name}, from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE), REDUCTION,
                                         **options)
    return to_numpy(loss), {grad}
'''
        return header + source_of(from_numpy, to_numpy, *_HELPERS[name], _FUNCTIONS[name], gradient) + driver


class KerasTensorflowAdapter(KerasAdapter):
    framework = "keras_tensorflow"
    backend = "tensorflow"
    own_process = False  # the TensorFlow adapter imports Keras on TensorFlow too: they can share a process
    companions = ("tensorflow-cpu", "tensorflow")
    implementations = _implementations("keras_tensorflow")


class KerasJaxAdapter(KerasAdapter):
    framework = "keras_jax"
    backend = "jax"
    companions = ("jax", "jaxlib")
    implementations = _implementations("keras_jax")


class KerasTorchAdapter(KerasAdapter):
    framework = "keras_torch"
    backend = "torch"
    companions = ("torch",)
    implementations = _implementations("keras_torch")


class KerasNumpyAdapter(KerasAdapter):
    framework = "keras_numpy"
    backend = "numpy"
    companions = ("numpy",)
    implementations = _implementations("keras_numpy", differentiable=False)
