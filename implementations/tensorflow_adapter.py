"""TensorFlow: `tf.nn.sigmoid_cross_entropy_with_logits` / `weighted_cross_entropy_with_logits` and Keras's
`binary_crossentropy`, gradients by `tf.GradientTape`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from implementations.base import Adapter, Implementation, Output, Reduction, Unsupported

__all__ = ["TensorflowAdapter"]

_REDUCE = "; w·l, then tf.reduce_sum / n (mean) or tf.reduce_sum (sum)"


class TensorflowAdapter(Adapter):
    framework = "tensorflow"
    distributions = ("tensorflow-cpu", "tensorflow", "tensorflow-gpu")
    companions = ("keras",)
    implementations = (
        Implementation(
            "tensorflow.logits", "logits",
            api="tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)" + _REDUCE,
            api_pos_weight="tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=x, pos_weight=p)" + _REDUCE,
        ),
        Implementation(
            "tensorflow.keras_probs", "probs",
            api="keras.losses.binary_crossentropy(y[..., None], p[..., None]) (trailing axis: per element)"
                + _REDUCE,
        ),
    )

    def _load(self, threads: int) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf, self.keras = tf, keras

    def runtime_version(self) -> str:
        return str(self.tf.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if self.tf.config.list_physical_devices("GPU") else ["cpu"]

    def _device_name(self, device: str) -> str:
        if device == "cpu":
            return "/CPU:0"
        if device == "gpu" and self.tf.config.list_physical_devices("GPU"):
            return "/GPU:0"
        raise Unsupported(f"tensorflow has no {device!r} device here")

    def _numpy(self, tensor: Any) -> np.ndarray:
        return np.asarray(self.tf.cast(tensor, self.tf.float64).numpy())

    def compute(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str
    ) -> Output:
        tf = self.tf
        api = impl.api_for("pos_weight" in arrays)
        with tf.device(self._device_name(device)):
            tensors = {name: tf.constant(value) for name, value in arrays.items()}
            x, y = tensors["x"], tensors["y"]
            with tf.GradientTape() as tape:
                tape.watch(x)
                if impl.input_form == "logits":
                    if "pos_weight" in tensors:
                        loss = tf.nn.weighted_cross_entropy_with_logits(
                            labels=y, logits=x, pos_weight=tensors["pos_weight"])
                    else:
                        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x)
                else:
                    loss = self.keras.losses.binary_crossentropy(y[..., None], x[..., None])
                if "weight" in tensors:
                    loss = tensors["weight"] * loss
                if reduction == "sum":
                    loss = tf.reduce_sum(loss)
                elif reduction == "mean":
                    loss = tf.reduce_sum(loss) / tf.cast(tf.size(loss), loss.dtype)
                total = tf.reduce_sum(loss)
            grad = tape.gradient(total, x)
        if grad is None:
            raise RuntimeError("tf.GradientTape returned no gradient for x")
        return Output(
            loss=self._numpy(loss),
            grad=self._numpy(grad),
            out_dtype=loss.dtype.name,
            grad_dtype=grad.dtype.name,
            api=api,
        )
