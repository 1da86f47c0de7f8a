"""A test-only adapter that faults on purpose, registered through the entry-point group by the reliability tests.

Each implementation computes the stable NumPy BCE, except on an input whose first logit is TRIGGER: there it
segfaults, aborts, hangs or eats memory, as a framework might on an extreme input.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Mapping

import numpy as np

from implementations.base import Adapter, Implementation, Reduction, Result, Unsupported
from implementations.numpy_adapter import NumpyAdapter, numpy_logits

__all__ = ["TRIGGER", "FaultAdapter"]

TRIGGER = 7.25  # exact in every dtype


def _fault(kind: str) -> None:
    if kind == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif kind == "abort":
        os.abort()  # SIGABRT
    elif kind == "hang":
        while True:
            time.sleep(60)
    elif kind == "memory":
        hoard = []
        while True:  # 64 MiB at a time, every page touched, until the harness stops us
            hoard.append(np.ones(8 * 2**20))
            time.sleep(0.02)


class FaultAdapter(Adapter):
    framework = "faulty"
    distributions = ("bce-harness-faults",)
    dtypes = ("float64", "float32")
    implementations = tuple(Implementation(f"faulty.{kind}", "logits", api=f"numpy stable BCE; {kind} on x[0] = 7.25")
                            for kind in ("segfault", "abort", "hang", "memory"))

    @classmethod
    def is_available(cls) -> bool:
        return True  # no module of its own to find: it lives in the tests

    def _load(self, threads: int) -> None:
        pass

    def runtime_version(self) -> str:
        return "0.1"

    def devices(self) -> list[str]:
        return ["cpu"]

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        if mode != "eager" or device != "cpu":
            raise Unsupported("faulty runs eagerly on the CPU only")
        x, y = arrays["x"], arrays["y"]
        if x.size and float(x.ravel()[0]) == TRIGGER:
            _fault(impl.impl.split(".")[1])
        return Result(*numpy_logits(x, y, reduction))

    to_numpy = staticmethod(NumpyAdapter.to_numpy)
    dtype_name = staticmethod(NumpyAdapter.dtype_name)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        raise NotImplementedError("the fault adapter has no reproducer")
