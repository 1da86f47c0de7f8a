"""Bench rows from measurements: ratios to the fastest sweep by sweep, the roofline against the best read, the
reason of what could not be timed, and the audit's status beside each speed."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.benchmark.measurements import Measurements
from harness.benchmark.messages import Prepared, Timed
from harness.benchmark.plan import BenchConfig, KernelConfig, ReadConfig
from harness.benchmark.rows import Timings, as_frame, bench_rows, conformance_status
from harness.benchmark.timing import BlockOptions
from harness.store.schema import BENCH_COLUMNS

FAST = BenchConfig("numpy", "numpy.logits", "logits", "eager", "forward", "cpu", "float32", 1000)
SLOW = FAST._replace(framework="torch", impl="torch.logits")
LOST = FAST._replace(framework="jax", impl="jax.logits")
TIMINGS = Timings(sweeps=2, processes=1, options=BlockOptions())


def _measured() -> Measurements:
    measured = Measurements()
    for key, per_sweep in ((FAST, (1e-3, 2e-3)), (SLOW, (3e-3, 3e-3)), (ReadConfig("numpy", "cpu", "float32", 1000),
                                                                         (5e-4, 5e-4))):
        measured.note(key, Prepared(0.01, 2, 4, 0, "note") if isinstance(key, BenchConfig) else Prepared(0.0, 2, 4))
        for value in per_sweep:
            measured.note(key, Timed(4, (value, value)))
    measured.problems[LOST] = ("WorkerLost", "the jax worker died with signal 9")
    return measured


def test_ratios_are_taken_sweep_by_sweep_and_the_roofline_against_the_best_read() -> None:
    rows, entries = bench_rows([FAST, SLOW, LOST], _measured(), {"numpy": {"versions": {"numpy": "2.4"}}}, TIMINGS)
    fast, slow, lost = rows
    assert (fast["ratio_to_best"], fast["ratio_low"], fast["ratio_high"]) == (1.0, 1.0, 1.0)
    # per sweep 3/2 and 3/1: the median, and the quartiles (the middle half of the sweeps)
    assert (slow["ratio_low"], slow["ratio_high"], slow["ratio_to_best"]) == (1.875, 2.625, 2.25)
    assert fast["median_s"] == pytest.approx(1.5e-3) and fast["framework_version"] == "2.4"
    assert fast["bytes"] == 8000 and fast["baseline_gbps"] == pytest.approx(8000 / 5e-4 / 1e9)
    assert fast["roofline_fraction"] == pytest.approx(5e-4 / 1.5e-3)
    assert lost["error_type"] == "WorkerLost" and "median_s" not in lost
    assert len(entries) == 3 and {e["group"] for e in entries} == {"cpu float32 n=1000 forward",
                                                                     "cpu float32 n=1000 read"}


def test_the_limit_is_the_larger_of_the_memory_floor_and_the_kernel() -> None:
    measured = _measured()  # the best read of the group: 5e-4 s
    (fast, slow, _), _ = bench_rows([FAST, SLOW, LOST], measured, {}, TIMINGS)
    assert (fast["limit_kind"], fast["limit_s"]) == ("memory", 5e-4)  # no kernel: the memory floor
    kernel = KernelConfig("cpu", "float32", 1000, "forward")
    measured.note(kernel, Prepared(0.0, 2, 4, accuracy="loss pass (0.1 ULP)"))
    for _ in range(2):
        measured.note(kernel, Timed(4, (1.2e-3, 1.2e-3)))
    (fast, slow, _), entries = bench_rows([FAST, SLOW, LOST], measured, {}, TIMINGS)
    assert (fast["limit_kind"], fast["limit_s"]) == ("kernel", 1.2e-3)
    assert fast["fraction_of_limit"] == pytest.approx(1.2e-3 / 1.5e-3)
    assert slow["fraction_of_limit"] == pytest.approx(1.2e-3 / 3e-3)
    assert entries[-1]["name"] == "kernel[forward-cpu-float32-1000]"
    measured.blocks[kernel] = [Timed(4, (2e-3, 2e-3))] * 2  # slower than FAST: FAST is above its limit
    (fast, *_), _ = bench_rows([FAST, SLOW, LOST], measured, {}, TIMINGS)
    assert fast["fraction_of_limit"] == pytest.approx(2e-3 / 1.5e-3)


def test_the_frame_has_the_schema_s_columns_and_stable_ids() -> None:
    rows, _ = bench_rows([FAST, LOST], _measured(), {}, TIMINGS)
    frame = as_frame(rows, "run-1")
    assert list(frame.columns) == BENCH_COLUMNS and (frame["run_id"] == "run-1").all()
    assert frame["row_id"].is_unique and frame.loc[1, "error_message"].startswith("the jax worker")
    assert frame.loc[0, "error_type"] == "" and frame.loc[0, "status"] == ""
    assert frame["stable"].tolist() == [True, pd.NA] and frame["stable"].dtype == "boolean"


def test_the_audit_s_worst_accuracy_status_goes_beside_each_speed() -> None:
    audit = pd.DataFrame({"impl": ["numpy.logits"] * 4, "dtype": ["float32"] * 4, "device": ["cpu"] * 4,
                          "mode": ["eager"] * 4, "check": ["reference", "reference", "reference", "batch"],
                          "status": ["pass", "inexact", "rejected", "fail"]})
    status = conformance_status(audit).iloc[0]
    assert (status["status"], status["status_detail"]) == ("inexact", "pass 1, inexact 1")  # batch, rejected: not
