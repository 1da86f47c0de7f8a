"""The tolerance policy: its numbers, and the order of severity that every summary uses."""

from __future__ import annotations

import math

from harness.verdict.tolerance import POLICY, SEVERITY, STATUSES, pass_ulp, worst_status


def test_pass_is_4_ulp_and_a_reduction_gets_log2_n_more() -> None:
    assert pass_ulp(None) == 4.0 and pass_ulp(1) == 4.0 and pass_ulp(1024) == 14.0
    assert math.isclose(pass_ulp(1000), 4 + math.log2(1000))


def test_every_status_is_explained_and_ranked() -> None:
    assert set(POLICY) == set(STATUSES) == set(SEVERITY)
    assert worst_status(["pass", "inexact", "fail"]) == "fail"
    assert worst_status(["deviation", "error"]) == "error" and worst_status([]) == ""
