"""The cross-check times the call `bench` times by default with the harness and with the framework's own timer,
in turns, and reports both medians and their ratio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cases import bench_inputs
from harness.benchmark.crosscheck import crosscheck
from implementations.numpy_adapter import NumpyAdapter, numpy_logits


class _OwnTimer(NumpyAdapter):
    """NumPy with a stand-in for a framework's own timer: it runs the function it is given and says 0.25 s."""

    def __init__(self) -> None:
        self.timed: list[Any] = []

    def native_timer(self, function: Callable[[], Any], device: str, threads: int, min_run_time: float) -> float:
        self.timed.append((function()[0], device, threads))
        return 0.25


def test_both_timers_time_the_default_configuration_in_turns() -> None:
    adapter = _OwnTimer()
    adapter.load(1)
    results = crosscheck(adapter, [100, 1000], threads=1, sweeps=3)
    assert [r["n"] for r in results] == [100, 1000] and len(adapter.timed) == 2 * 3  # each size, each sweep
    for index, (result, n) in enumerate(zip(results, (100, 1000), strict=True)):
        inputs = bench_inputs(n, "logits", "float32", seed=0)  # the bytes the harness times
        mean = numpy_logits(inputs["x"], inputs["y"], "mean")[0]
        assert [loss for loss, *_ in adapter.timed[3 * index:3 * index + 3]] == [mean] * 3
        assert np.asarray(mean).dtype == np.float32
        assert result["native_median_s"] == 0.25 and 0 < result["harness_median_s"] < 0.25
        assert result["ratio"] == result["harness_median_s"] / 0.25
    assert {(device, threads) for _, device, threads in adapter.timed} == {("cpu", 1)}


def test_a_framework_without_a_timer_of_its_own_is_timed_with_timeit() -> None:
    (result,) = crosscheck("numpy", [1000], threads=1, sweeps=2, min_run_time=0.02)
    assert set(result) == {"n", "harness_median_s", "native_median_s", "ratio"} and result["n"] == 1000
    assert 0 < result["native_median_s"] < 0.01 and 0 < result["harness_median_s"] < 0.01
