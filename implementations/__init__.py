"""Adapters: one per framework, each wrapping that framework's own BCE APIs.

Importing this package imports no framework; adapters import theirs in `load()`, inside a worker process.
Third-party adapters register through the entry-point group `bce_harness.implementations`.
"""

from __future__ import annotations

from implementations.base import (
    DERIVATIVES,
    DIRECTIONS,
    REDUCTIONS,
    Adapter,
    Derivative,
    Direction,
    Implementation,
    Output,
    Reduction,
    Unsupported,
    thread_environment,
)
from implementations.registry import BUILTIN_ADAPTERS, ENTRY_POINT_GROUP, Unloadable, adapter_classes

__all__ = [
    "BUILTIN_ADAPTERS",
    "DERIVATIVES",
    "DIRECTIONS",
    "ENTRY_POINT_GROUP",
    "REDUCTIONS",
    "Adapter",
    "Derivative",
    "Direction",
    "Implementation",
    "Output",
    "Reduction",
    "Unloadable",
    "Unsupported",
    "adapter_classes",
    "thread_environment",
]
