"""The benchmark checks itself: a group whose harness median and the framework's own timer disagree, or whose
ratios to the fastest move too much between sweeps, is re-timed once; what stays disturbed is marked unstable.

The end-to-end tests run the real runner (`run_bench`) over an in-process pool whose workers time on a fake
clock: every call costs a known time, and chosen blocks are made four times slower."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from harness.benchmark.measurements import Measurements
from harness.benchmark.messages import Failed, OwnTimed, Prepared, TimeBlock, Timed
from harness.benchmark.plan import KERNEL, BenchConfig
from harness.benchmark.stability import disturbances, retimed_with
from harness.benchmark.sweeps import run_bench
from harness.benchmark.timing import BlockOptions
from harness.benchmark.worker import BenchSession
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Received
from implementations import Implementation
from implementations.numpy_adapter import NumpyAdapter

COST = {"forward": 1e-3, "forward_backward": 2e-3}  # fake seconds per call
READ_COST = 1e-4
TICK = 1e-9  # each reading of the fake clock moves it on by this much
TINY = BlockOptions(min_rounds=3, max_time=0.002, min_time=1e-4)
SWEEPS = 5


def config(framework: str, direction: str = "forward") -> BenchConfig:
    return BenchConfig(framework, "numpy.logits", "logits", "eager", direction, "cpu", "float32", 100)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slowdown = 1.0  # > 1 while a disturbed block is timed

    def __call__(self) -> float:
        self.now += TICK  # a clock that never moved would have no precision (pytest-benchmark measures it)
        return self.now


class Scripted(NumpyAdapter):
    """NumPy that costs COST per call on the fake clock, with a timer of its own that reads the same clock."""

    def native_timer_label(self, device: str) -> str:
        return "own timer"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.load(1)

    def bench_function(self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str,
                       direction: Any) -> Callable[[], Any]:
        return lambda: self._spend(COST[direction])

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        return lambda: self._spend(READ_COST)

    def _spend(self, seconds: float) -> None:
        self.clock.now += seconds * self.clock.slowdown

    def native_timer(self, function: Callable[[], Any], device: str, threads: int, min_run_time: float) -> float:
        start = self.clock()
        function()
        return self.clock() - start


class InlinePool:
    """The worker pool's interface, answered in this process: each framework's session on the fake clock. Block b
    of a configuration (counted over both passes, 0 … 2·SWEEPS − 1) is slowed down when `disturbed` lists it."""

    def __init__(self, disturbed: dict[str, set[int]], failing: dict[str, set[int]] | None = None) -> None:
        self.clock = FakeClock()
        self.disturbed = disturbed
        self.failing = failing or {}  # blocks whose worker dies instead of answering
        self.blocks: dict[BenchConfig, int] = defaultdict(int)
        self.asked: list[Any] = []

    def start(self, name: str, target: Any, framework: str, *args: Any) -> Any:
        worker = SimpleNamespace(name=name, framework=framework)
        if framework == KERNEL:
            worker.session, worker.hello = None, LoadFailed(KERNEL, "KernelUnavailable", "not in this test")
        else:
            worker.session = BenchSession(Scripted(self.clock), 0, TINY, timer=self.clock)
            worker.hello = Hello(framework, {framework: "1.0"}, ["cpu"], 0)
        return worker

    def receive(self, worker: Any, timeout: float) -> Received:
        return Received(worker, worker.hello)

    def ask(self, worker: Any, request: Any, timeout: float) -> Received:
        self.asked.append(request)
        if isinstance(request, TimeBlock) and isinstance(request.config, BenchConfig):
            block = self.blocks[request.config]
            self.blocks[request.config] += 1
            if block in self.disturbed.get(request.config.framework, set()):
                self.clock.slowdown = 4.0
            if block in self.failing.get(request.config.framework, set()):
                return Received(worker, Failed("WorkerLost", "the worker died"))
        try:
            return Received(worker, worker.session.answer(request))
        finally:
            self.clock.slowdown = 1.0

    def stop(self, worker: Any, goodbye: Any = None, grace: float = 0) -> None:
        pass

    def close(self, goodbye: Any = None, grace: float = 0) -> None:
        pass


def bench(disturbed: dict[str, set[int]], journal: list[dict[str, Any]] | None = None,
          frameworks: tuple[str, ...] = ("numpy", "twin"),
          failing: dict[str, set[int]] | None = None) -> tuple[Any, InlinePool]:
    pool = InlinePool(disturbed, failing)
    configs = [config(name, direction) for name in frameworks for direction in COST]
    result = run_bench(configs, {"numpy": NumpyAdapter}, sweeps=SWEEPS, processes=1, options=TINY, pool=pool,
                       journal=None if journal is None else journal.append)
    return result, pool


def rows_by(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["framework"], row["direction"]): row for row in result.rows}


def test_a_quiet_group_is_timed_once_and_stable() -> None:
    result, pool = bench({})
    assert result.checks == [{"device": "cpu", "dtype": "float32", "n": 100, "retimed": []}]
    assert set(pool.blocks.values()) == {SWEEPS}
    for (_, direction), row in rows_by(result).items():
        assert row["stable"] and row["stability_note"] == ""
        assert row["median_s"] == pytest.approx(COST[direction], rel=1e-5)
    forward = rows_by(result)[("numpy", "forward")]  # the cross-checked configuration: eager forward
    assert forward["own_timer"] == "own timer" and forward["own_timer_s"] == pytest.approx(1e-3, rel=1e-5)
    assert rows_by(result)[("numpy", "forward_backward")]["own_timer"] == ""


def test_a_disturbed_median_is_retimed_and_then_stable() -> None:
    result, pool = bench({"numpy": {0, 1, 2}})  # 3 of the first pass's 5 blocks: the median is 4× the own timer
    (check,) = result.checks
    assert len(check["retimed"]) == 2  # numpy's forward and forward_backward both moved
    assert check["retimed"][0] == ("numpy.logits [eager] forward cpu float32 n=100: its ratio to the fastest "
                                   "ranged 1.00–4.00 over the middle half of the sweeps (more than 1.5×); harness "
                                   "median 4000 µs vs own timer 1000 µs (4.00×, beyond ±10%)")
    assert set(pool.blocks.values()) == {2 * SWEEPS}  # numpy's, and twin's as the fastest beside them
    rows = rows_by(result)
    assert all(row["stable"] for row in rows.values())
    assert rows[("numpy", "forward")]["median_s"] == pytest.approx(1e-3, rel=1e-5)  # the re-time's blocks only


def test_what_stays_disturbed_is_marked_unstable_with_the_reason() -> None:
    result, _ = bench({"numpy": {0, 1, 2, 5, 6, 7}})  # disturbed again in the re-time
    rows = rows_by(result)
    forward = rows[("numpy", "forward")]
    assert forward["stable"] is False
    assert forward["stability_note"].startswith("its ratio to the fastest ranged 1.00–4.00 over the middle half")
    assert "harness median 4000 µs vs own timer 1000 µs (4.00×" in forward["stability_note"]
    assert rows[("twin", "forward")]["stable"]  # its peer was measured cleanly


def test_a_ratio_that_moves_between_sweeps_is_retimed() -> None:
    result, _ = bench({"twin": {1, 3}})  # two sweeps of five: the median holds, the spread does not
    (check,) = result.checks
    assert check["retimed"] == [f"numpy.logits [eager] {direction} cpu float32 n=100: its ratio to the fastest "
                                "ranged 1.00–4.00 over the middle half of the sweeps (more than 1.5×)"
                                for direction in COST]
    assert all(row["stable"] and row["ratio_high"] == pytest.approx(1.0) for row in result.rows)


def test_only_the_disturbed_and_the_fastest_beside_them_are_timed_again() -> None:
    result, pool = bench({"third": {0, 2, 4}}, frameworks=("numpy", "twin", "third"))
    blocks = {c.framework: count for c, count in pool.blocks.items()}
    assert blocks == {"numpy": 2 * SWEEPS, "twin": SWEEPS, "third": 2 * SWEEPS}  # numpy: the fastest, by a tick
    rows = rows_by(result)
    third = rows[("third", "forward")]
    assert third["stable"] and third["median_s"] == pytest.approx(1e-3, rel=1e-5)  # the second pass's blocks
    assert rows[("twin", "forward")]["ratio_to_best"] == pytest.approx(1.0, rel=1e-5)  # its first pass stands


def test_the_decision_is_journaled_and_a_resumed_run_keeps_it() -> None:
    journal: list[dict[str, Any]] = []
    first, _ = bench({"numpy": {0, 1, 2, 5, 6, 7}}, journal)
    checked = [record for record in journal if record.get("event") == "checked"]
    assert len(checked) == 1 and checked[0]["unstable"][0]["impl"] == "numpy.logits"
    # the own timer in sweeps 0, 2 and 4 (every other round of one process), of both frameworks, in both passes
    assert sum(record.get("event") == "crosscheck" for record in journal) == 3 * 2 * 2
    pool = InlinePool({})
    configs = [config(name, direction) for name in ("numpy", "twin") for direction in COST]
    resumed = run_bench(configs, {"numpy": NumpyAdapter}, sweeps=SWEEPS, processes=1, options=TINY, pool=pool,
                        replay=journal)
    assert pool.asked == []  # nothing timed again
    assert rows_by(resumed)[("numpy", "forward")]["stability_note"] == \
        rows_by(first)[("numpy", "forward")]["stability_note"]
    assert resumed.checks == first.checks
    for key, row in rows_by(first).items():  # both passes rebuilt: the same ratios, taken within each pass
        again = rows_by(resumed)[key]
        assert (again["ratio_to_best"], again["ratio_low"], again["median_s"]) == (
            row["ratio_to_best"], row["ratio_low"], row["median_s"])


def test_disturbances_of_a_quiet_measurement_are_none() -> None:
    measured = Measurements()
    quiet = config("numpy")
    measured.note(quiet, Prepared(0.0, 3, 1))
    for _ in range(SWEEPS):
        measured.note(quiet, Timed(1, (1e-3, 1e-3, 1e-3)))
        measured.own[quiet].append(OwnTimed("own timer", 1.05e-3))  # 5 % apart: within the tolerance
    assert disturbances([quiet], measured, SWEEPS) == {}
    measured.own[quiet][:] = [OwnTimed("own timer", 1.2e-3)] * SWEEPS
    assert disturbances([quiet], measured, SWEEPS) == {
        quiet: "harness median 1000 µs vs own timer 1200 µs (0.83×, beyond ±10%)"}


def test_a_second_pass_that_fails_keeps_the_first_marked_unstable() -> None:
    journal: list[dict[str, Any]] = []
    # numpy's first block of the second pass fails: both directions' second passes are given up
    result, _ = bench({"numpy": {0, 1, 2}}, journal, failing={"numpy": {SWEEPS}})
    rows = rows_by(result)
    forward = rows[("numpy", "forward")]
    assert forward["median_s"] == pytest.approx(4e-3, rel=1e-5)  # its first pass: disturbed, but its own
    assert not forward["stable"] and forward["stability_note"] == "timing it again failed (WorkerLost: the worker died)"
    assert "error_type" not in forward and forward["own_timer_s"] == pytest.approx(1e-3, rel=1e-5)
    twin = rows[("twin", "forward")]  # timed again beside numpy: back to its first pass, which was fine
    assert twin["stable"] and twin["stability_note"] == "" and twin["ratio_to_best"] == pytest.approx(1.0)
    configs = [config(name, direction) for name in ("numpy", "twin") for direction in COST]
    resumed = run_bench(configs, {"numpy": NumpyAdapter}, sweeps=SWEEPS, processes=1, options=TINY,
                        pool=InlinePool({}), replay=journal)
    for key, row in rows_by(resumed).items():  # a resumed run holds what the live run held (NaN as NaN)
        for column in ("median_s", "ratio_to_best", "stable", "stability_note", "own_timer_s", "error_type"):
            live, again = rows[key].get(column), row.get(column)
            assert live == again or (live != live and again != again), (key, column, live, again)


def test_the_fastest_beside_a_disturbed_fastest_is_the_next_one() -> None:
    measured = Measurements()
    configs = [config(name) for name in ("a", "b", "c")]
    for value, key in zip((1e-3, 2e-3, 3e-3), configs, strict=True):
        measured.note(key, Prepared(0.0, 3, 1))
        measured.note(key, Timed(1, (value,) * 3))
    assert retimed_with([configs[0]], configs, measured) == configs[:2]  # a alone would be compared with itself
    assert retimed_with([configs[2]], configs, measured) == [configs[0], configs[2]]


def test_a_journal_older_than_the_self_check_is_resumed_as_it_is() -> None:
    journal: list[dict[str, Any]] = []
    first, _ = bench({}, journal)
    legacy = [{k: v for k, v in record.items() if k != "pass"} for record in journal
              if record.get("event") not in ("crosscheck", "checked") and "kernel" not in record]
    pool = InlinePool({})
    configs = [config(name, direction) for name in ("numpy", "twin") for direction in COST]
    resumed = run_bench(configs, {"numpy": NumpyAdapter}, sweeps=SWEEPS, processes=1, options=TINY, pool=pool,
                        replay=legacy)
    assert pool.asked == []  # what it timed stands
    for key, row in rows_by(resumed).items():
        assert row["median_s"] == rows_by(first)[key]["median_s"] and row["stable"] is None
        assert row["stability_note"].startswith("not checked: resumed from a journal written before")
