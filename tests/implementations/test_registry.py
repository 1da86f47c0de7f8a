"""The registry: the built-ins (also without installing the checkout), entry points that add or replace, and a
broken plugin that becomes a warning and an unavailable stand-in, never a crash."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

import implementations.registry as registry
from implementations import BUILTIN_ADAPTERS, Unloadable, adapter_classes
from tests.conftest import ROOT


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """Entry points of the group for one test (the registry's cache is cleared around it)."""
    found: list[EntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in found if e.group == group])
    registry.clear_cache()
    yield found
    registry.clear_cache()


def test_the_built_ins_are_the_pyproject_entry_points() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared["bce_harness.implementations"] == BUILTIN_ADAPTERS


def test_a_broken_plugin_warns_and_stands_in_as_unavailable(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint("broken", "no_such_module_anywhere:Adapter", registry.ENTRY_POINT_GROUP))
    plugins.append(EntryPoint("notone", "pathlib:Path", registry.ENTRY_POINT_GROUP))
    with pytest.warns(RuntimeWarning) as caught:
        classes = adapter_classes()
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2 and "adapter 'broken' (no_such_module_anywhere:Adapter) failed to load: " \
        "ModuleNotFoundError" in messages[0] and "adapter 'notone'" in messages[1]
    assert list(classes)[:len(BUILTIN_ADAPTERS)] == list(BUILTIN_ADAPTERS)  # the others still load
    broken = classes["broken"]
    assert issubclass(broken, Unloadable) and not broken.is_available()
    assert [impl.impl for impl in broken.implementations] == ["broken.logits", "broken.probs"]
    assert "failed to load (ModuleNotFoundError" in broken.unavailable_reason()
    assert "is not an Adapter subclass" in classes["notone"].unavailable_reason()
    assert adapter_classes() is classes  # cached: the warning comes once


def test_an_entry_point_may_replace_a_built_in(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint("numpy", "tests.e2e.fault_adapter:FaultAdapter", registry.ENTRY_POINT_GROUP))
    assert adapter_classes()["numpy"].__name__ == "FaultAdapter"


def test_every_declared_implementation_has_the_function_that_computes_it() -> None:
    """An Implementation without its module-level function would answer every cell with a KeyError."""
    import implementations.jax_adapter as jax_module
    import implementations.numpy_adapter as numpy_module
    import implementations.tensorflow_adapter as tensorflow_module
    import implementations.torch_adapter as torch_module

    tables = {"torch": torch_module._FUNCTIONS, "jax": jax_module._FUNCTIONS,
              "tensorflow": tensorflow_module._FUNCTIONS, "numpy": numpy_module._ENTRY}
    for framework, table in tables.items():
        declared = {impl.impl for impl in adapter_classes()[framework].implementations}
        assert set(table) == declared, framework
