"""TensorFlow and Keras: `tf.nn.sigmoid_cross_entropy_with_logits` / `weighted_cross_entropy_with_logits`,
`keras.losses.binary_crossentropy`, the `keras.losses.BinaryCrossentropy` class (both forms; the probabilities'
also of `tf.math.sigmoid(x)` inside the function), `tf.nn.softmax_cross_entropy_with_logits` on two classes and the
worked example's log-sum-exp formula; gradients by `tf.GradientTape` (further derivatives: nested tapes,
`tf.autodiff.ForwardAccumulator`); eager, `tf.function` or `tf.function(jit_compile=True)`.

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

__all__ = ["TensorflowAdapter"]

tf: ModuleType  # bound by TensorflowAdapter._load, inside the worker process
keras: ModuleType

_REDUCE = "; w·l, then tf.reduce_mean or tf.reduce_sum"
_CLASS = ("keras.losses.BinaryCrossentropy(from_logits={}, reduction=None | 'sum_over_batch_size' | 'sum')"
          "(y[..., None], {}[..., None], sample_weight=w)")
_LSE = ("worked example: max_val = tf.maximum(-x, 0); x - x·y + max_val + log(exp(-max_val) + exp(-x - max_val))"
        "; × weight; tf.reduce_mean / tf.reduce_sum")
_LSE_POS = ("worked example: max_val = tf.maximum(-x, 0); lw = 1 + (p - 1)·y; x - x·y + lw·(log(exp(-max_val) + "
            "exp(-x - max_val)) + max_val); × weight; tf.reduce_mean / tf.reduce_sum")


def from_numpy(values: Any, dtype_name: str) -> Any:
    """float64 values that are exact in `dtype_name` → a tensor of that dtype (no rounding happens)."""
    return tf.cast(tf.constant(np.array(values, dtype=np.float64)), dtype_name)


def to_numpy(values: Any) -> np.ndarray:
    return np.asarray(tf.cast(values, tf.float64).numpy())


def weighted_reduction(loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l, then TensorFlow's own mean or sum, as users reduce (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = weight * loss
    if reduction == "sum":
        return tf.reduce_sum(loss)
    if reduction == "mean":
        return tf.reduce_mean(loss)
    return loss


def tensorflow_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    if pos_weight is None:
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)
    else:
        loss = tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=x, pos_weight=pos_weight)
    return weighted_reduction(loss, reduction, weight)


def keras_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    # Keras averages over the last axis: a trailing axis of size 1 makes the loss per element
    return weighted_reduction(keras.losses.binary_crossentropy(y[..., None], p[..., None]), reduction, weight)


def keras_probs_of_sigmoid(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    # tf.math.sigmoid as a model's output layer: in a graph Keras sees the Sigmoid op and takes its input as logits
    loss = keras.losses.binary_crossentropy(y[..., None], tf.math.sigmoid(x[..., None]))
    return weighted_reduction(loss, reduction, weight)


def keras_class(from_logits: bool, prediction: Any, y: Any, reduction: str, weight: Any = None,
                label_smoothing: float = 0.0) -> Any:
    """The loss class on `prediction` of shape y.shape + (1,) (a trailing axis of size 1: the loss per element)."""
    keras_reduction = {"none": None, "mean": "sum_over_batch_size", "sum": "sum"}[reduction]
    loss_object = keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=keras_reduction,
                                                  label_smoothing=label_smoothing)
    sample_weight = None if weight is None else tf.broadcast_to(weight, tf.shape(y))
    return loss_object(y[..., None], prediction, sample_weight=sample_weight)


def keras_class_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(False, p[..., None], y, reduction, weight)


def keras_class_logits(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(True, x[..., None], y, reduction, weight)


def keras_smoothing(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(True, x[..., None], y, reduction, weight, label_smoothing=0.25)


def keras_class_probs_of_sigmoid(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return keras_class(False, tf.math.sigmoid(x[..., None]), y, reduction, weight)


def tensorflow_softmax2(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    """Two-class softmax cross-entropy on logits [0, x] with probability targets [1 − y, y]: BCE by identity."""
    logits = tf.stack([tf.zeros_like(x), x], -1)
    targets = tf.stack([1 - y, y], -1)
    return weighted_reduction(tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits), reduction,
                              weight)


def tensorflow_lse_formula(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    max_val = tf.maximum(-x, tf.zeros_like(x))
    log_term = tf.math.log(tf.exp(-max_val) + tf.exp(-x - max_val))
    if pos_weight is None:
        loss = x - x * y + max_val + log_term
    else:
        loss = x - x * y + (1 + (pos_weight - 1) * y) * (log_term + max_val)
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        return tf.reduce_mean(loss)
    return tf.reduce_sum(loss) if reduction == "sum" else loss


def loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through tf.GradientTape."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = function(x, y, reduction, **options)
        total = tf.reduce_sum(loss)
    return loss, tape.gradient(total, x)


def forward_tangent(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The reduced loss's tangent along x + t·1 (per element for `none`) by forward mode (ForwardAccumulator)."""
    with tf.autodiff.ForwardAccumulator(primals=x, tangents=tf.ones_like(x)) as accumulator:
        loss = function(x, y, reduction, **options)
    return accumulator.jvp(loss)


def gradient_wrt(name: str, function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """d(sum of the reduced loss)/d(the argument `name`: y, weight or pos_weight) through tf.GradientTape."""
    arguments = {"y": y, **options}
    variable = arguments[name]
    with tf.GradientTape() as tape:
        tape.watch(variable)
        total = tf.reduce_sum(function(x, arguments.pop("y"), reduction, **arguments))
    return tape.gradient(total, variable)


def second_derivative(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The diagonal of the Hessian wrt x, d(Σ ∂L/∂x)/dx (the loss is elementwise: H is diagonal) by nested tapes."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        _, grad = loss_and_grad(function, x, y, reduction, **options)
        total = tf.reduce_sum(grad)
    return tape.gradient(total, x)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "tensorflow.logits": tensorflow_logits, "tensorflow.keras_probs": keras_probs,
    "tensorflow.keras_class_probs": keras_class_probs, "tensorflow.keras_class_logits": keras_class_logits,
    "tensorflow.lse_formula": tensorflow_lse_formula, "tensorflow.softmax2": tensorflow_softmax2,
    "tensorflow.keras_probs_of_sigmoid": keras_probs_of_sigmoid,
    "tensorflow.keras_class_probs_of_sigmoid": keras_class_probs_of_sigmoid,
    "tensorflow.keras_smoothing": keras_smoothing,
}
_HELPERS: dict[str, tuple[Callable[..., Any], ...]] = {
    "tensorflow.logits": (weighted_reduction,), "tensorflow.keras_probs": (weighted_reduction,),
    "tensorflow.keras_class_probs": (keras_class,), "tensorflow.keras_class_logits": (keras_class,),
    "tensorflow.softmax2": (weighted_reduction,), "tensorflow.keras_probs_of_sigmoid": (weighted_reduction,),
    "tensorflow.keras_class_probs_of_sigmoid": (keras_class,), "tensorflow.keras_smoothing": (keras_class,),
}
# each further derivative: its helper and the arguments before the loss function
_DERIVATIVES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "grad_fwd": (forward_tangent, ()), "grad2": (second_derivative, ()),
    **{f"grad_{name}": (gradient_wrt, (name,)) for name in ("y", "weight", "pos_weight")},
}
_REPRO_HEADER = ('import os\n\nos.environ.setdefault("KERAS_BACKEND", "tensorflow")\n'
                 'import keras\nimport tensorflow as tf\n\n')


class TensorflowAdapter(Adapter):
    framework = "tensorflow"
    distributions = ("tensorflow-cpu", "tensorflow", "tensorflow-gpu")
    companions = ("keras",)
    release_pages: ClassVar[Mapping[str, str]] = {
        "tensorflow-cpu": "https://github.com/tensorflow/tensorflow/releases/tag/v{version}",
        "tensorflow": "https://github.com/tensorflow/tensorflow/releases/tag/v{version}",
        "keras": "https://github.com/keras-team/keras/releases/tag/v{version}",
    }
    modes = ("eager", "tf.function", "tf.function(jit_compile=True)")
    implementations = (
        Implementation(
            "tensorflow.logits", "logits",
            api="tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)" + _REDUCE,
            api_pos_weight="tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=x, pos_weight=p)" + _REDUCE,
        ),
        Implementation(
            "tensorflow.keras_probs", "probs",
            api="keras.losses.binary_crossentropy(y[..., None], p[..., None]) (trailing axis: per element)"
                + _REDUCE, same_as="tensorflow.logits", relation="probs_logits",
        ),
        # the loss classes convert their inputs to their own dtype (floatx, float32) before computing
        Implementation("tensorflow.keras_class_probs", "probs", api=_CLASS.format("False", "p"),
                       compute_dtype="float32", same_as="tensorflow.keras_class_logits", relation="probs_logits"),
        Implementation("tensorflow.keras_class_logits", "logits", api=_CLASS.format("True", "x"),
                       compute_dtype="float32"),
        Implementation("tensorflow.keras_smoothing", "logits",
                       api=_CLASS.format("True, label_smoothing=0.25", "x") + " (judged on the smoothed labels)",
                       compute_dtype="float32", same_as="tensorflow.keras_class_logits", relation="label_smoothing",
                       runs_on="relation"),
        Implementation("tensorflow.lse_formula", "logits", api=_LSE, api_pos_weight=_LSE_POS, formula=True),
        Implementation(
            "tensorflow.softmax2", "logits",
            api="tf.nn.softmax_cross_entropy_with_logits(labels=stack([1 - y, y], -1), logits=stack([0, x], -1))"
                + _REDUCE,
            same_as="tensorflow.logits", relation="softmax2", runs_on="relation",
        ),
        # σ inside the function, as a model's output layer: graph rewrites (Keras's own) may act on it
        Implementation(
            "tensorflow.keras_probs_of_sigmoid", "logits",
            api="keras.losses.binary_crossentropy(y[..., None], tf.math.sigmoid(x[..., None]))" + _REDUCE,
            sigmoid_inside=True, runs_on="sigmoid",
        ),
        Implementation("tensorflow.keras_class_probs_of_sigmoid", "logits",
                       api=_CLASS.format("False", "tf.math.sigmoid(x)"), compute_dtype="float32",
                       sigmoid_inside=True, runs_on="sigmoid"),
    )

    def _load(self, threads: int) -> None:
        global keras
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # several workers share one GPU (audit jobs, bench processes): each takes memory as it needs it, as JAX's
        # XLA_PYTHON_CLIENT_PREALLOCATE=false does, instead of all of it at start
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras as keras_module

        self.use_here()
        keras = keras_module
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    def use_here(self) -> None:
        global tf
        import tensorflow as tf_module

        tf = tf_module
        self._graphs: dict[tuple[str, str, str], Any] = {}

    def runtime_version(self) -> str:
        return str(tf.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def _device(self, device: str) -> str:
        if device == "cpu":
            return "/CPU:0"
        if device == "gpu" and tf.config.list_physical_devices("GPU"):
            return "/GPU:0"
        raise Unsupported(f"tensorflow has no {device!r} device here")

    def _graph(self, impl: Implementation, reduction: str, mode: str) -> Any:
        key = (impl.impl, reduction, mode)
        if key not in self._graphs:
            function = _FUNCTIONS[impl.impl]
            # one trace per input signature: Keras needs the rank, which relaxed retracing would hide
            self._graphs[key] = tf.function(lambda x, y, **options: loss_and_grad(function, x, y, reduction, **options),
                                            jit_compile=mode.endswith("(jit_compile=True)"))
        return self._graphs[key]

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        if mode == "eager":
            return self.evaluate_function(_FUNCTIONS[impl.impl], arrays, reduction, device)
        with tf.device(self._device(device)):
            tensors = {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}
            x, y = tensors.pop("x"), tensors.pop("y")
            if tf.config.functions_run_eagerly():
                raise RuntimeError("tf.config.run_functions_eagerly is on: tf.function would run eagerly")
            graph = self._graph(impl, reduction, mode)
            loss, grad = graph(x, y, **tensors)
            return Result(loss, grad, f"traced graphs: {graph.experimental_get_tracing_count()}")

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        with tf.device(self._device(device)):
            tensors = {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}
            x, y = tensors.pop("x"), tensors.pop("y")
            if not with_grad:
                return Result(function(x, y, reduction, **tensors), None)
            return Result(*loss_and_grad(function, x, y, reduction, **tensors))

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        return f"tf.constant({values}, dtype=tf.{dtype})"

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        impl.api_for("pos_weight" in arrays)  # Unsupported for all of them where the API has no pos_weight
        return self.function_derivatives(_FUNCTIONS[impl.impl], arrays, reduction, device, wanted)

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        with tf.device(self._device(device)):
            tensors = {name: from_numpy(value, value.dtype.name) for name, value in arrays.items()}
            answers = derivative_answers(_DERIVATIVES, function, tensors, reduction, wanted, arrays)
        # TensorFlow answers None for a quantity the loss does not depend on
        return {name: RuntimeError(f"tensorflow's autodiff returned None for {name} (not connected)")
                if answer is None else answer for name, answer in answers.items()}

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(values.dtype.name)

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        where = self._device(device)
        with tf.device(where):
            x, y = (from_numpy(arrays[name], arrays[name].dtype.name) for name in ("x", "y"))
        function = _FUNCTIONS[impl.impl]

        def step(x: Any, y: Any) -> Any:
            if direction == "forward":
                return function(x, y, "mean")
            return loss_and_grad(function, x, y, "mean")

        if mode != "eager":
            if tf.config.functions_run_eagerly():
                raise RuntimeError("tf.config.run_functions_eagerly is on: tf.function would run eagerly")
            step = tf.function(step, jit_compile=mode.endswith("(jit_compile=True)"))  # fresh: traced on call 1

        def run() -> Any:
            with tf.device(where):
                return step(x, y)

        return run

    def sync(self, result: Any, device: str) -> None:
        # Eager TensorFlow runs CPU kernels synchronously; GPU kernels are queued on streams.
        if device == "gpu":
            tf.test.experimental.sync_devices()

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        where = self._device(device)
        with tf.device(where):
            buffer = tf.ones([nbytes // 4], dtype=tf.float32)

        def run() -> Any:
            with tf.device(where):
                return tf.reduce_sum(buffer)

        return run

    def thread_settings(self) -> dict[str, int]:
        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def allocator_peak(self, device: str, run: Callable[[], Any]) -> int:
        if device != "gpu":
            raise Unsupported(f"tensorflow keeps allocator statistics for GPUs only, not {device!r}")
        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["current"]
        self.sync(run(), device)
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"] - before)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        function = _FUNCTIONS[impl.impl].__name__
        call = f"loss_and_grad({function}, x, y, REDUCTION, **options)"
        if mode == "eager":
            step = f"lambda x, y, **options: {call}"
        else:
            jit = "True" if mode.endswith("(jit_compile=True)") else "False"
            step = f"tf.function(lambda x, y, **options: {call}, jit_compile={jit})"
        step_name = "EAGER_STEP" if mode == "eager" else "COMPILED_STEP"  # a path reproducer defines both
        driver = f'''
{step_name} = {step}


def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    loss, grad = {step_name}(from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE), **options)
    return to_numpy(loss), to_numpy(grad)
'''
        helpers = _HELPERS.get(impl.impl, ())
        return _REPRO_HEADER + source_of(from_numpy, to_numpy, *helpers, _FUNCTIONS[impl.impl], loss_and_grad) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        function = _FUNCTIONS[impl.impl]
        return derivative_source(self.framework, _DERIVATIVES, quantity, _REPRO_HEADER,
                                 (from_numpy, to_numpy, *_HELPERS.get(impl.impl, ()), loss_and_grad), function)
