"""What the search maximises and how a behaviour and its onset are named (without workers)."""

from __future__ import annotations

import json
import math

from harness.fuzzer.probe import Config, Problem, targets
from harness.fuzzer.shrink import Onset, behaviour
from harness.store.schema import ConformanceRow


def _row(quantity: str, status: str, failures: list[dict[str, object]], reduction: str = "none",
         max_ulp_error: float = 0.0) -> ConformanceRow:
    return ConformanceRow(quantity=quantity, status=status, reduction=reduction, n=8, max_ulp_error=max_ulp_error,
                          failures=json.dumps(failures) if failures else "")


def test_targets_are_log2_ulps_over_tolerance_and_nonfinite_counts_per_quantity() -> None:
    rows = [
        _row("loss", "fail", [{"mode": "lost", "ulp": 64.0, "count": 2}, {"mode": "NaN", "ulp": "inf", "count": 3}]),
        _row("loss", "fail", [{"mode": "imprecise", "ulp": 1024.0, "count": 1}]),
        _row("grad", "pass", [{"mode": "lost", "ulp": 1e9, "count": 1}]),  # passing rows score nothing
        _row("grad", "fail", [{"mode": "imprecise", "ulp": 32.0, "count": 1}], reduction="mean"),
        _row("grad_y", "fail", [{"mode": "lost", "ulp": 2.0**40, "count": 1}]),  # not asked for
    ]
    scores = targets(rows, ("loss", "grad"))
    assert scores == {"loss: log2 ULP error over tolerance": 8.0,  # 1024 / 4 = 2^8, the worse of the two rows
                      "loss: non-finite elements": 3.0,
                      "grad: log2 ULP error over tolerance": 3.0}  # a gradient is element-wise: 32 / 4 = 2^3
    reduced = targets([_row("loss", "fail", [], reduction="sum", max_ulp_error=56.0)], ("loss",))
    assert reduced == {"loss: log2 ULP error over tolerance": 3.0}  # a sum of 8 may be 4 + log2(8) = 7 ULP off


def _problem(got: float, failure: str, region: str = "x ≪ 0, y = 0") -> Problem:
    config = Config("torch.logits", "float32", "none", "eager", "loss")
    return Problem(("precision", "loss", region, failure), config, "fail", "reference", {"got": got})


def test_a_behaviour_is_the_failure_and_the_class_of_its_value_wherever_it_lies() -> None:
    assert behaviour(_problem(0.0, "lost")) == ("precision", "loss", "lost", "0.0")
    assert behaviour(_problem(-0.0, "lost", "moderate x, y = 0")) == behaviour(_problem(0.0, "lost"))
    assert behaviour(_problem(9.5e-07, "lost")) == ("precision", "loss", "lost", "a number")
    assert behaviour(_problem(math.inf, "inf"))[3] == "inf" and behaviour(_problem(math.nan, "NaN"))[3] == "NaN"


def test_an_onset_says_where_and_which_way_in_the_dtypes_own_digits() -> None:
    onset = Onset("float32", -14.556091, -14.55609, "the float32 loss is 0.0")
    assert onset.direction == "downward"
    assert onset.text() == "from x = -14.556091 downward the float32 loss is 0.0 (not at x = -14.55609)"
    assert Onset("float16", 11.09375, 11.0859375, "w").text() == "from x = 11.09 upward w (not at x = 11.086)"
