"""The registry of adapters: the built-ins, then third-party entry points of the group `bce_harness.implementations`
(which may add or replace one). Cached, and it never crashes: an adapter that fails to load becomes a warning and
an `Unloadable` stand-in whose rows are `unavailable` with the reason.

Loading a class imports only the adapter's module, never its framework.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from importlib.metadata import entry_points
from typing import ClassVar

from implementations.base import Adapter, Implementation
from implementations.own import CALLABLES_ENV, spec_adapters

__all__ = ["BUILTIN_ADAPTERS", "ENTRY_POINT_GROUP", "Unloadable", "adapter_classes", "clear_cache"]

ENTRY_POINT_GROUP = "bce_harness.implementations"

# Listed here as well as in pyproject.toml's entry points, so that a checkout run without installing it has them.
BUILTIN_ADAPTERS: dict[str, str] = {
    "numpy": "implementations.numpy_adapter:NumpyAdapter",
    "torch": "implementations.torch_adapter:TorchAdapter",
    "tensorflow": "implementations.tensorflow_adapter:TensorflowAdapter",
    "jax": "implementations.jax_adapter:JaxAdapter",
    "keras_tensorflow": "implementations.keras_adapter:KerasTensorflowAdapter",
    "keras_jax": "implementations.keras_adapter:KerasJaxAdapter",
    "keras_torch": "implementations.keras_adapter:KerasTorchAdapter",
    "keras_numpy": "implementations.keras_adapter:KerasNumpyAdapter",
    "array_api": "implementations.array_api_adapter:ArrayApiAdapter",
    "mlx": "implementations.mlx_adapter:MlxAdapter",
    "tinygrad": "implementations.tinygrad_adapter:TinygradAdapter",
    "sklearn": "implementations.sklearn_adapter:SklearnAdapter",
    "onnxruntime": "implementations.onnxruntime_adapter:OnnxruntimeAdapter",
}


class Unloadable(Adapter):
    """Stands in for an adapter whose module or class failed to load: never available, with the reason. Its
    implementations are unknown, so its rows stand under `<name>.logits` and `<name>.probs`."""

    target: ClassVar[str]
    reason: ClassVar[str]

    @classmethod
    def is_available(cls) -> bool:
        return False

    @classmethod
    def unavailable_reason(cls) -> str:
        return f"its adapter {cls.target} failed to load ({cls.reason}); fix or uninstall the plugin that provides it"

    @classmethod
    def installed_version(cls) -> str | None:
        return None


def _unloadable(name: str, target: str, reason: str) -> type[Adapter]:
    attributes = {"framework": name, "distributions": (), "target": target, "reason": reason,
                  "implementations": (Implementation(f"{name}.logits", "logits", api=f"{target} (failed to load)"),
                                      Implementation(f"{name}.probs", "probs", api=f"{target} (failed to load)"))}
    return type(f"Unloadable_{name}", (Unloadable,), attributes)


def _load_class(target: str) -> type[Adapter]:
    module_name, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not an Adapter subclass")
    return cls


def adapter_classes() -> dict[str, type[Adapter]]:
    """Every known adapter class by framework name: the built-ins first, then entry points (which may add or
    replace), then the user's own functions named in the environment variable BCE_HARNESS_CALLABLES (see
    implementations.own; a process started with it, such as a worker, has them too). An adapter that fails to
    load warns (RuntimeWarning) and is an `Unloadable` stand-in; a malformed spec raises `BadCallable`."""
    return _adapter_classes(os.environ.get(CALLABLES_ENV, ""))


def clear_cache() -> None:
    """Forget the adapters found so far (a test that changes the entry points)."""
    _plugin_classes.cache_clear()
    _adapter_classes.cache_clear()


@functools.cache
def _adapter_classes(callables: str) -> dict[str, type[Adapter]]:
    found = _plugin_classes()
    return {**found, **spec_adapters(callables, found)}


@functools.cache
def _plugin_classes() -> dict[str, type[Adapter]]:
    targets = dict(BUILTIN_ADAPTERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        targets[entry.name] = entry.value
    found: dict[str, type[Adapter]] = {}
    for name, target in targets.items():
        try:
            found[name] = _load_class(target)
        except Exception as exc:  # a broken plugin must not cost every command its run
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            warnings.warn(f"bce-harness: adapter {name!r} ({target}) failed to load: {reason}; its rows are "
                          "unavailable", RuntimeWarning, stacklevel=2)
            found[name] = _unloadable(name, target, reason)
    return found
