"""Regions and failure modes: each dtype's own saturation threshold, the domain's outside named alone, and the
modes from first principles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.verdict.regions import failure_modes, failures, input_regions, ordinariness, saturation


def test_saturation_follows_each_dtype() -> None:
    """e^-|x| falls below the epsilon 2^(1-p) from |x| = (p - 1)·log 2: 36.04 in float64, 15.94 in float32."""
    assert saturation("float64") == pytest.approx(52 * math.log(2), rel=1e-15)
    assert saturation("float32") == pytest.approx(23 * math.log(2), rel=1e-15)
    x, y = np.array([20.0, 36.5, -36.5, 15.0]), np.array([1.0, 1.0, 0.0, 0.0])
    assert input_regions(x, y, "logits", "float64").tolist() == ["moderate x, y = 1", "x ≫ 0, y = 1",
                                                                  "x ≪ 0, y = 0", "moderate x, y = 0"]
    assert input_regions(x, y, "logits", "float32").tolist() == ["x ≫ 0, y = 1", "x ≫ 0, y = 1", "x ≪ 0, y = 0",
                                                                  "moderate x, y = 0"]


def test_edges_and_the_outside_of_the_domain() -> None:
    regions = input_regions(np.array([0.0, 1e-310, np.inf, np.nan, 2.0]), np.array([0.5, 0.0, 1.0, 0.0, 1.5]),
                            "logits", "float64")
    assert regions.tolist() == ["x ≈ 0, soft y", "x ≈ 0, y = 0", "x = +inf, y = 1", "x NaN", "y outside [0, 1]"]
    probs = input_regions(np.array([0.0, 1.0, 1e-40, 1e-9, 1 - 2.0**-30, 0.3, 1.5]), np.zeros(7), "probs", "float32")
    assert probs.tolist() == ["p = 0, y = 0", "p = 1, y = 0", "p subnormal, y = 0", "p ≈ 0, y = 0", "p ≈ 1, y = 0",
                              "moderate p, y = 0", "p outside [0, 1]"]
    assert [ordinariness(r) for r in ("x ≫ 0, y = 1", "p = 1, y = 0", "x = +inf, y = 1")] == [0, 1, 2]



def test_failure_modes() -> None:
    got = np.array([math.nan, math.inf, 1.0, -math.inf, 1.0, -1.0, 0.0, 1.5, 1.0000001])
    exact = np.array([1.0, 1.0, math.inf, math.inf, math.nan, 1.0, 3e-7, 1.0, 1.0])
    assert failure_modes(got, exact).tolist() == ["NaN", "inf", "finite for inf", "wrong infinity", "not NaN",
                                                  "lost", "lost", "lost", "imprecise"]


def test_failures_group_by_region_and_mode_with_their_worst_element() -> None:
    x, y = np.array([40.0, 39.0, -40.0]), np.array([1.0, 1.0, 0.0])
    got, exact = np.zeros(3), np.array([-4.2e-18, -1.1e-17, 4.2e-18])
    text = failures(np.array([True, True, True]), got, exact, np.array([1e15, 3e15, 1e15]), x, y, "logits",
                    "float64")
    groups = json.loads(text)
    assert [(g["region"], g["mode"], g["count"], g["index"]) for g in groups] == [
        ("x ≫ 0, y = 1", "lost", 2, [1]), ("x ≪ 0, y = 0", "lost", 1, [2])]
    assert failures(np.zeros(3, dtype=bool), got, exact, np.zeros(3), x, y, "logits", "float64") == ""
    labels, codes = np.unique(input_regions(x, y, "logits", "float64"), return_inverse=True)
    assert failures(np.array([True, True, True]), got, exact, np.array([1e15, 3e15, 1e15]), x, y, "logits",
                    "float64", (labels, codes)) == text  # every element's regions given: the same groups
    given = failures(np.array([False, True, True]), got, exact, np.array([1e15, 3e15, 1e15]), x, y, "logits",
                     "float64", (np.array(["A", "B"]), np.array([0, 1, 0])))
    assert [(g["region"], g["index"]) for g in json.loads(given)] == [("B", [1]), ("A", [2])]  # read, not made
