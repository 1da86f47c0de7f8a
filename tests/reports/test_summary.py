"""Summaries as frames: the status matrix, alarm rows worst first, speeds for people, version changes."""

from __future__ import annotations

import math

import pandas as pd

from reports.summary import (
    alarm_rows,
    bench_table,
    framework_versions,
    size_label,
    status_matrix,
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
