"""The timing primitives, on a fake clock where the exact answer is known: the sync is inside the timed region,
the first call is kept out of the rounds, pytest-benchmark's calibration and statistics are the library's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.benchmark.timing import (
    BlockOptions,
    benchmark_document,
    benchmark_entry,
    calibrate,
    first_call,
    resident_peak,
    summarize,
    synced,
    time_block,
)


class FakeClock:
    """A clock that moves only when work is done (`spend`), and logs every reading as "t"."""

    def __init__(self, events: list[str] | None = None) -> None:
        self.now = 0.0
        self.events = events if events is not None else []

    def __call__(self) -> float:
        self.events.append("t")
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


def test_sync_runs_inside_the_timed_region() -> None:
    events: list[str] = []
    clock = FakeClock(events)

    def function() -> str:
        events.append("run")
        clock.spend(1.0)
        return "result"

    def sync(result: str) -> None:
        assert result == "result"  # the sync gets what the function returned, to wait for
        events.append("sync")
        clock.spend(0.5)  # the queued work finishes here: it must be inside the measurement

    block = time_block(synced(function, sync), rounds=3, iterations=2, options=BlockOptions(), timer=clock)
    timed_round = ["t", "run", "sync", "run", "sync", "t"]
    # three timed rounds; pytest-benchmark then makes one untimed call for the return value
    assert events == timed_round * 3 + ["run", "sync"]
    assert block.iterations == 2 and block.data == (1.5, 1.5, 1.5)  # per call: work plus the wait for it


def test_first_call_is_timed_alone_and_kept_out_of_the_rounds() -> None:
    clock = FakeClock()
    costs = iter([7.0] + [0.25] * 100)  # the first call compiles

    def call() -> None:
        clock.spend(next(costs))

    assert first_call(call, timer=clock) == 7.0
    block = time_block(call, rounds=4, iterations=1, options=BlockOptions(), timer=clock)
    assert block.data == (0.25,) * 4


def test_calibration_is_pytest_benchmarks() -> None:
    """A call of 0.1 ms with rounds of at least 1 ms: pytest-benchmark tries 1 iteration (0.1 ms, below the
    estimate threshold of 5/10 × 1 ms), then 10 (1 ms: enough), and fills max_time = 0.1 s with
    ceil(0.1 / 1e-3) = 100 rounds."""
    clock = FakeClock()
    clock.spend(1.0)

    def call() -> None:
        clock.spend(1e-4)

    def timer() -> float:
        clock.spend(2**-40)  # each reading moves a hair, so the timer's precision is measurable
        return clock()

    block = calibrate(call, BlockOptions(min_rounds=3, max_time=0.1, min_time=1e-3), timer=timer)
    assert block.iterations == 10
    assert len(block.data) == 100
    assert block.data == pytest.approx((1e-4,) * 100, rel=1e-6)


def test_calibration_keeps_min_rounds_for_slow_calls() -> None:
    clock = FakeClock()

    def call() -> None:
        clock.spend(2.0)

    def timer() -> float:
        clock.spend(2**-40)
        return clock()

    block = calibrate(call, BlockOptions(min_rounds=3, max_time=0.1), timer=timer)
    assert block.iterations == 1 and len(block.data) == 3


def test_summary_uses_pytest_benchmark_quartiles() -> None:
    stats = summarize([4.0, 1.0, 100.0, 3.0, 2.0])
    assert stats["min"] == 1.0 and stats["median"] == 3.0 and stats["max"] == 100.0
    # pytest-benchmark's quartiles for 5 sorted rounds x (method 3): q1 = 0.25·x[0] + 0.75·x[1] = 1.75,
    # q3 = 0.75·x[3] + 0.25·x[4] = 28
    assert stats["q1"] == 1.75 and stats["q3"] == 28.0 and stats["iqr"] == 26.25
    assert stats["rounds"] == 5.0


def test_resident_peak_sees_what_a_call_allocates() -> None:
    size = 64 * 2**20

    def allocate() -> None:
        block = np.ones(size // 8)  # every page written, so resident
        assert block[-1] == 1.0

    peak = resident_peak(allocate)
    # within 1 MiB below (the interpreter may give a few pages back meanwhile) and 16 MiB above (its own work)
    assert size - 2**20 <= peak < size + 16 * 2**20
    # freed, then handed back by malloc_trim: a call that allocates little is not charged for the earlier one
    assert resident_peak(lambda: None) < 4 * 2**20


def test_pytest_benchmark_compare_reads_our_json(tmp_path: Path) -> None:
    options = BlockOptions()
    entries = [
        benchmark_entry("bce", "cpu float32 n=1e+03 forward", {"impl": "a.logits", "n": 1000}, {"bytes": 8000},
                        options, 10, [1e-4, 1.1e-4, 0.9e-4]),
        benchmark_entry("bce", "cpu float32 n=1e+03 forward", {"impl": "b.logits", "n": 1000}, {"bytes": 8000},
                        options, 10, [2e-4, 2.1e-4, 1.9e-4]),
    ]
    file = tmp_path / "bench.json"
    file.write_text(json.dumps(benchmark_document(entries)))
    document = json.loads(file.read_text())
    assert [b["name"] for b in document["benchmarks"]] == ["bce[a.logits-1000]", "bce[b.logits-1000]"]
    assert document["benchmarks"][0]["stats"]["median"] == 1e-4 and document["benchmarks"][0]["stats"]["data"]
    done = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(file), "--columns=min,median"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "bce[a.logits-1000]" in done.stdout and "bce[b.logits-1000]" in done.stdout
