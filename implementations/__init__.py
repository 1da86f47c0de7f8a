"""Adapters: one per framework, each wrapping that framework's own BCE APIs.

Importing this package imports no framework; adapters import theirs in `load()`, inside a worker process.
Third-party adapters register through the entry-point group `bce_harness.implementations`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from implementations.base import (
    DIRECTIONS,
    REDUCTIONS,
    Adapter,
    Direction,
    Implementation,
    Output,
    Reduction,
    Unsupported,
    thread_environment,
)

__all__ = [
    "BUILTIN_ADAPTERS",
    "DIRECTIONS",
    "ENTRY_POINT_GROUP",
    "REDUCTIONS",
    "Adapter",
    "Direction",
    "Implementation",
    "Output",
    "Reduction",
    "Unsupported",
    "adapter_classes",
    "thread_environment",
]

ENTRY_POINT_GROUP = "bce_harness.implementations"

BUILTIN_ADAPTERS: dict[str, str] = {
    "numpy": "implementations.numpy_adapter:NumpyAdapter",
    "torch": "implementations.torch_adapter:TorchAdapter",
    "tensorflow": "implementations.tensorflow_adapter:TensorflowAdapter",
    "jax": "implementations.jax_adapter:JaxAdapter",
}


def _load_class(target: str) -> type[Adapter]:
    module_name, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not an Adapter subclass")
    return cls


def adapter_classes() -> dict[str, type[Adapter]]:
    """Every known adapter class by framework name: the built-ins, then entry points (which may add or replace).

    Loading a class imports only the adapter module, never its framework.
    """
    targets = dict(BUILTIN_ADAPTERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        targets[entry.name] = entry.value
    return {name: _load_class(target) for name, target in targets.items()}
