"""The frameworks' adapters, loaded once per test process, for tests that call a framework in this process."""

from __future__ import annotations

import functools

import pytest

from implementations import Adapter, adapter_classes

ADAPTERS = adapter_classes()


@functools.cache
def _loaded(name: str) -> Adapter:
    instance = ADAPTERS[name]()
    instance.load(threads=1)
    return instance


def loaded_adapter(name: str) -> Adapter:
    """The adapter of `name`, its framework imported and configured (one thread); skips where it is missing."""
    if not ADAPTERS[name].is_available():
        pytest.skip(f"{name} is not installed")
    if getattr(ADAPTERS[name], "own_process", False):
        pytest.skip(f"{name} needs a process of its own (Keras holds one backend per process); "
                    "tests/implementations/test_keras.py runs it in a subprocess")
    return _loaded(name)
