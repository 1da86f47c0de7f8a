"""The adapter contract: `compute` is the same for every framework (mode check, API name, Output), capabilities
are data, versions come from metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from implementations import Implementation, Reduction, Unsupported
from implementations.base import Result, source_of, thread_environment
from implementations.numpy_adapter import NumpyAdapter


class _Recording(NumpyAdapter):
    modes = ("eager", "fake.compile")

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        self.asked = (impl.impl, reduction, device, mode)
        loss = np.float32(0.5)
        grad = None if reduction == "sum" else np.zeros(2, dtype=np.float32)
        return Result(loss, grad, "calls: 1" if mode != "eager" else "")


def test_compute_wraps_the_one_method_an_adapter_fills() -> None:
    adapter = _Recording()
    impl = adapter.implementation("numpy.logits")
    out = adapter.compute(impl, {"x": np.zeros(2), "y": np.zeros(2), "pos_weight": np.ones(1)}, "mean", "cpu",
                          "fake.compile")
    assert adapter.asked == ("numpy.logits", "mean", "cpu", "fake.compile")
    assert (out.out_dtype, out.grad_dtype, out.compiled, out.api) == ("float32", "float32", "calls: 1",
                                                                      impl.api_pos_weight)
    assert out.loss.dtype == np.float64 and float(out.loss) == 0.5
    with pytest.raises(Unsupported, match=r"has no mode 'jax\.jit'"):
        adapter.compute(impl, {"x": np.zeros(2), "y": np.zeros(2)}, "mean", "cpu", "jax.jit")
    with pytest.raises(RuntimeError, match="returned no gradient"):
        adapter.compute(impl, {"x": np.zeros(2), "y": np.zeros(2)}, "sum", "cpu")


def test_an_api_without_pos_weight_is_unsupported_with_it() -> None:
    impl = Implementation("x.probs", "probs", api="f(p, y)")
    assert impl.api_for(False) == "f(p, y)"
    with pytest.raises(Unsupported, match=r"x\.probs: f\(p, y\) has no pos_weight"):
        impl.api_for(True)


def test_capabilities_and_versions_are_read_without_importing() -> None:
    assert NumpyAdapter.is_available() and NumpyAdapter.distribution_versions()["numpy"] == np.__version__
    assert NumpyAdapter.unavailable_reason().startswith("numpy is not installed; install it")
    with pytest.raises(ValueError, match=r"unknown implementation 'numpy\.nope'; numpy has: numpy\.logits"):
        NumpyAdapter.implementation("numpy.nope")


def test_helpers_for_reproducers_and_threads() -> None:
    def sample(value: Any) -> Any:
        return value

    assert source_of(sample).startswith("def sample(value: Any) -> Any:\n    return value\n")
    assert thread_environment(3)["OMP_NUM_THREADS"] == "3" and thread_environment(3)["TF_NUM_INTEROP_THREADS"] == "1"
