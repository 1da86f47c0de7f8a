"""JAX: `optax.losses.sigmoid_binary_cross_entropy`, a `jax.nn.log_sigmoid` composition for `pos_weight`, and
`jax.scipy.special.xlogy`/`xlog1py` for probabilities; gradients by `jax.grad`. Float64 needs x64 mode."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from implementations.base import Adapter, Implementation, Output, Reduction, Unsupported

__all__ = ["JaxAdapter"]

_REDUCE = "; w·l, then jnp.sum / n (mean) or jnp.sum (sum)"


class JaxAdapter(Adapter):
    framework = "jax"
    distributions = ("jax",)
    companions = ("jaxlib", "optax")
    implementations = (
        Implementation(
            "jax.logits", "logits",
            api="optax.losses.sigmoid_binary_cross_entropy(x, y)" + _REDUCE,
            api_pos_weight="composed -(p·y·jax.nn.log_sigmoid(x) + (1-y)·jax.nn.log_sigmoid(-x)) "
                           "(optax has no pos_weight)" + _REDUCE,
        ),
        Implementation(
            "jax.probs", "probs",
            api="composed -(jax.scipy.special.xlogy(y, p) + jax.scipy.special.xlog1py(1-y, -p))" + _REDUCE,
            api_pos_weight="composed -(p·xlogy(y, q) + xlog1py(1-y, -q)) with jax.scipy.special" + _REDUCE,
        ),
    )

    def _load(self, threads: int) -> None:
        # JAX has no public intra-op thread setting; XLA's flag keeps its CPU client to one Eigen pool thread.
        if threads == 1:
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        import jax

        jax.config.update("jax_enable_x64", True)
        if self.compile_cache:  # eager dispatch compiles each primitive per shape and dtype: keep them
            jax.config.update("jax_compilation_cache_dir", self.compile_cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        import jax.numpy as jnp
        import jax.scipy.special
        import optax

        self.jax, self.jnp, self.optax = jax, jnp, optax

    def runtime_version(self) -> str:
        return str(self.jax.__version__)

    def _gpu_devices(self) -> list[Any]:
        try:
            return list(self.jax.devices("gpu"))
        except RuntimeError:
            return []

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if self._gpu_devices() else ["cpu"]

    def _device(self, device: str) -> Any:
        if device == "cpu":
            return self.jax.devices("cpu")[0]
        gpus = self._gpu_devices()
        if device == "gpu" and gpus:
            return gpus[0]
        raise Unsupported(f"jax has no {device!r} device here")

    def _per_element(self, impl: Implementation, tensors: Mapping[str, Any]) -> Callable[[Any], Any]:
        jax, optax = self.jax, self.optax
        y = tensors["y"]
        if impl.input_form == "logits":
            if "pos_weight" in tensors:
                p = tensors["pos_weight"]
                return lambda x: -(p * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
            return lambda x: optax.losses.sigmoid_binary_cross_entropy(x, y)
        special = jax.scipy.special
        pw = tensors.get("pos_weight")
        if pw is not None:
            return lambda q: -(pw * special.xlogy(y, q) + special.xlog1py(1 - y, -q))
        return lambda q: -(special.xlogy(y, q) + special.xlog1py(1 - y, -q))

    def compute(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str
    ) -> Output:
        jax, jnp = self.jax, self.jnp
        api = impl.api_for("pos_weight" in arrays)
        where = self._device(device)
        tensors = {name: jax.device_put(jnp.asarray(value), where) for name, value in arrays.items()}
        per_element = self._per_element(impl, tensors)
        weight = tensors.get("weight")

        def reduced(x: Any) -> Any:
            loss = per_element(x)
            if weight is not None:
                loss = weight * loss
            if reduction == "sum":
                return jnp.sum(loss)
            if reduction == "mean":
                return jnp.sum(loss) / jnp.asarray(loss.size, dtype=loss.dtype)
            return loss

        loss, pullback = jax.vjp(reduced, tensors["x"])
        (grad,) = pullback(jnp.ones_like(loss))  # cotangent of ones: the gradient of the sum
        grad.block_until_ready()
        return Output(
            loss=np.asarray(loss).astype(np.float64),
            grad=np.asarray(grad).astype(np.float64),
            out_dtype=str(loss.dtype),
            grad_dtype=str(grad.dtype),
            api=api,
        )
