"""Summaries as frames: the status matrix, alarm rows worst first, speeds for people, version changes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.summary import (
    alarm_rows,
    bench_table,
    framework_versions,
    self_check_rows,
    size_label,
    status_matrix,
    unstable,
    unstable_rows,
    version_changes,
    versioned,
)
from tests.reports.runs import rows

TABLE = pd.DataFrame(rows())


def test_the_status_matrix_counts_rows_and_keeps_the_worst_finite_error() -> None:
    matrix = status_matrix(TABLE).set_index(["impl", "dtype"])
    assert matrix.loc[("torch.logits", "float32"), "fail"] == 1 and matrix.loc[("torch.logits", "float32"), "pass"] == 1
    assert matrix.loc[("torch.logits", "float32"), "worst_ulp"] == 1.5e7
    assert math.isnan(matrix.loc[("numpy.logits", "float64"), "worst_ulp"])  # inf is not a finite error
    assert list(matrix.index.get_level_values("dtype"))[:2] == ["float64", "float32"]  # numpy: dtypes in order


def test_alarm_rows_come_worst_first_and_leave_out_everything_else() -> None:
    found = alarm_rows(TABLE)
    assert list(found["status"]) == ["nonfinite", "fail"]  # no pass, and no documented deviation


def test_sizes_read_as_people_write_them() -> None:
    assert [size_label(n) for n in (1000, 10_000_000, 4099)] == ["1e3", "1e7", "4099"]


def test_the_speed_table_groups_what_competes_fastest_first() -> None:
    bench = pd.DataFrame({"device": ["cpu"] * 2, "dtype": ["float32"] * 2, "n": [1000] * 2,
                          "direction": ["forward"] * 2, "impl": ["a", "b"], "mode": ["eager"] * 2,
                          "median_s": [2e-3, 1e-3], "iqr_s": [1e-4, 1e-4], "ratio_to_best": [2.0, 1.0],
                          "ratio_low": [1.9, 1.0], "ratio_high": [2.1, 1.0], "gbps": [1.0, 2.0],
                          "roofline_fraction": [0.1, 0.2], "compile_s": [0.0, 0.0], "peak_memory_bytes": [0, 2**20],
                          "status": ["pass", ""], "error_type": ["", ""], "error_message": ["", ""]})
    table = bench_table(bench)
    assert list(table["impl"]) == ["b", "a"] and list(table["ratio_range"]) == ["1.00–1.00", "1.90–2.10"]
    assert list(table["median_ms"]) == [1.0, 2.0] and list(table["peak_mib"]) == [1.0, 0.0]


def test_a_beaten_kernel_is_no_limit_and_unstable_rows_are_apart() -> None:
    bench = pd.DataFrame({"device": ["cpu"] * 3, "dtype": ["float32"] * 3, "n": [1000] * 3,
                          "direction": ["forward"] * 3, "impl": ["a", "b", "c"], "mode": ["eager"] * 3,
                          "median_s": [1e-3, 2e-3, 4e-3], "iqr_s": [0.0] * 3, "ratio_to_best": [1.0, 2.0, 4.0],
                          "ratio_low": [1.0, 1.9, 2.0], "ratio_high": [1.0, 2.1, 6.0], "gbps": [1.0] * 3,
                          "roofline_fraction": [0.1] * 3, "compile_s": [0.0] * 3, "peak_memory_bytes": [0] * 3,
                          "limit_s": [1.2e-3] * 3, "limit_kind": ["kernel"] * 3,
                          "fraction_of_limit": [1.2, 0.6, 0.3], "stable": pd.array([True, True, False], "boolean"),
                          "stability_note": ["", "", "its ratio to the fastest ranged 2.00–6.00"],
                          "own_timer": ["timeit", "", ""], "own_timer_s": [1.01e-3, np.nan, np.nan],
                          "status": [""] * 3, "error_type": [""] * 3, "error_message": [""] * 3})
    table = bench_table(bench)
    assert list(table["limit"]) == ["kernel (not the limit: slower than this)", "kernel", "kernel"]
    assert list(table["limit_pct"]) == pytest.approx([120.0, 60.0, 30.0])
    assert list(unstable(bench)) == [False, False, True]
    apart = unstable_rows(bench)
    assert list(apart["impl"]) == ["c"] and apart.loc[0, "why"].startswith("its ratio to the fastest")
    checked = self_check_rows(bench)
    assert list(checked["impl"]) == ["a"] and checked.loc[0, "ratio"] == pytest.approx(1 / 1.01)


def test_a_benchmark_stored_before_the_limit_and_the_self_check_still_reads() -> None:
    old = pd.DataFrame({"device": ["cpu"], "dtype": ["float32"], "n": [1000], "direction": ["forward"],
                        "impl": ["a"], "mode": ["eager"], "median_s": [1e-3], "iqr_s": [0.0], "ratio_to_best": [1.0],
                        "ratio_low": [1.0], "ratio_high": [1.0], "gbps": [8.0], "roofline_fraction": [0.1],
                        "compile_s": [0.0], "peak_memory_bytes": [0], "status": [""], "error_type": [""],
                        "error_message": [""]})
    assert math.isnan(bench_table(old).loc[0, "limit_pct"]) and bench_table(old).loc[0, "limit"] == ""
    assert unstable_rows(old).empty and self_check_rows(old).empty and not unstable(old).any()


def test_version_changes_list_only_what_differs() -> None:
    base = {"case": "c", "dtype": "float32", "device": "cpu", "reduction": "mean", "quantity": "loss",
            "check": "reference", "mode": "eager", "impl": "jax.logits"}
    rows = pd.DataFrame([
        dict(base, row_id="r1", framework_version="0.9.2", status="pass", max_ulp_error=0.5),
        dict(base, row_id="r1", framework_version="0.10.2", status="pass", max_ulp_error=0.5),
        dict(base, row_id="r2", case="d", framework_version="0.9.2", status="fail", max_ulp_error=1e6),
        dict(base, row_id="r2", case="d", framework_version="0.10.2", status="pass", max_ulp_error=1.0),
        dict(base, row_id="r3", impl="numpy.logits", framework_version="2.4.6", status="pass", max_ulp_error=0.0),
        dict(base, row_id="r4", case="e", framework_version="0.9.2", status="error", max_ulp_error=float("nan")),
        dict(base, row_id="r4", case="e", framework_version="0.10.2", status="error", max_ulp_error=float("nan")),
        dict(base, row_id="r5", case="f", framework_version="0.9.2", status="pass", max_ulp_error=1.0),
    ])
    changes = version_changes(rows)
    assert list(changes["case"]) == ["d"]
    assert changes[["status 0.9.2", "status 0.10.2"]].values.tolist() == [["fail", "pass"]]
    assert set(versioned(rows)["impl"]) == {"jax.logits @ 0.9.2", "jax.logits @ 0.10.2", "numpy.logits"}
    # what report.md and report.html both list as "Versions compared"
    assert framework_versions(rows) == {"jax.logits": ["0.10.2", "0.9.2"]}
