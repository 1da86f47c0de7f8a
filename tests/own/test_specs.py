"""Naming your own function for another process: the spec `module:function[:form[:framework]]`, the framework
read from the module's source (never imported here), the registry's environment variable, and the clear errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import implementations.registry as registry
from harness.api import UsageError
from harness.own import registered_callables
from implementations import REDUCTIONS, adapter_classes
from implementations.own import CALLABLES_ENV, BadCallable, OwnSpec, framework_of
from tests.conftest import assert_usage_error, run_main
from tests.own import losses

SOURCES = {
    "own_np.py": "import numpy as np\n\ndef bce(x, y):\n    return np.log1p(np.exp(-x)) + (1 - y) * x\n",
    "own_torch.py": "import torch\n\ndef bce(x, y, reduction='none', weight=None):\n    return x\n",
    "own_both.py": "import torch\nimport jax.numpy as jnp\n\ndef bce(x, y):\n    return x\n",
    "own_clash.py": "def torch(x, y):\n    return x\n",
}


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, source in SOURCES.items():
        (tmp_path / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(CALLABLES_ENV, raising=False)
    yield tmp_path
    registry.clear_cache()


def test_a_spec_reads_the_framework_from_the_source_without_importing_it(modules: Path) -> None:
    assert OwnSpec.parse("own_np:bce") == OwnSpec("own_np", "bce", "logits", "numpy")
    assert OwnSpec.parse("own_torch:bce:probs") == OwnSpec("own_torch", "bce", "probs", "torch")
    assert OwnSpec.parse("own_both:bce:logits:jax").framework == "jax"
    assert "own_np" not in sys.modules and "own_torch" not in sys.modules


@pytest.mark.parametrize(("text", "fragment"), [
    ("own_np", "give module:function[:form[:framework]]"),
    ("own_np:bce:scores", "unknown form 'scores'"),
    ("own_np:bce:logits:mxnet", "unknown framework 'mxnet'"),
    ("own_both:bce", "own_both imports jax and torch; name the framework"),
    ("no_such_module_here:bce", "no module 'no_such_module_here' on the path"),
    ("own_np:nosuch", "own_np defines no function 'nosuch'"),
    ("no_such_module_here:bce:logits:torch", "no module 'no_such_module_here' on the path"),
])
def test_bad_specs_say_what_to_change(modules: Path, text: str, fragment: str) -> None:
    with pytest.raises(BadCallable) as caught:
        OwnSpec.parse(text)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_registry_has_the_functions_of_the_environment(modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALLABLES_ENV, "own_np:bce:logits:numpy;own_torch:bce:probs:torch")
    with pytest.raises(BadCallable, match="two callables are named 'bce'; rename one"):
        adapter_classes()
    monkeypatch.setenv(CALLABLES_ENV, "own_torch:bce:probs:torch")
    own = adapter_classes()["bce"]
    (impl,) = own.implementations
    assert (impl.impl, impl.input_form, impl.reductions, impl.differentiable) == ("bce.probs", "probs", REDUCTIONS,
                                                                                   True)
    assert own.dtypes == adapter_classes()["torch"].dtypes and "own_torch" not in sys.modules


def test_registered_callables_are_there_only_inside_the_block(modules: Path) -> None:
    with registered_callables(["own_np:bce"]) as specs:
        assert [spec.text() for spec in specs] == ["own_np:bce:logits:numpy"]
        (impl,) = adapter_classes()["bce"].implementations
        assert impl.reductions == ("none",) and not impl.differentiable  # per element; NumPy has no autodiff
    assert "bce" not in adapter_classes()
    with pytest.raises(UsageError, match="two callables are named 'bce'"), \
            registered_callables(["own_np:bce", "own_torch:bce"]):
        pass
    with pytest.raises(UsageError, match="has the name of a framework"), registered_callables(["own_clash:torch"]):
        pass


def test_registered_callables_give_back_the_variable_as_it_was(modules: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALLABLES_ENV, "own_torch:bce:probs:torch")
    with registered_callables(["own_np:bce"]):
        assert os.environ[CALLABLES_ENV] == "own_np:bce:logits:numpy"
    assert os.environ[CALLABLES_ENV] == "own_torch:bce:probs:torch"


def test_a_bad_variable_is_one_line_from_the_cli(modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALLABLES_ENV, "no_such_module_here:f")
    assert_usage_error(run_main("list"), "no module 'no_such_module_here' on the path")


def test_a_function_objects_framework_is_what_its_code_uses() -> None:
    assert framework_of(losses.naive_numpy) == "numpy"
    assert framework_of(losses.weighted_numpy) == "numpy"  # through stable_numpy, which it calls
    assert framework_of(losses.naive_torch) == "torch"
    with pytest.raises(BadCallable, match="cannot tell which of numpy and torch"):
        framework_of(losses.unsure)  # its module imports both, and it names neither
