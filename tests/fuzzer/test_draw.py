"""What the fuzzer draws: the ordered float line, and batches whose values are exact in their dtype and reach
every binade, the subnormals, the special values and every kind of label."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from cases import DTYPES, float_format, round_to_format
from harness.fuzzer.draw import Draw, batches, from_ordinal, ordinal


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ordinals_are_consecutive_along_the_float_line(dtype: str) -> None:
    fmt = float_format(dtype)
    values = [-fmt.max_finite, -1.5, -fmt.smallest_subnormal, 0.0, fmt.smallest_subnormal, fmt.smallest_normal,
              1.0, fmt.max_finite]
    places = [ordinal(v, fmt) for v in values]
    assert places == sorted(places) and ordinal(-0.0, fmt) == 0 == ordinal(0.0, fmt)
    assert [from_ordinal(p, fmt) for p in places] == values
    assert from_ordinal(ordinal(1.0, fmt) + 1, fmt) == 1.0 + fmt.eps  # the next number after 1
    assert from_ordinal(1, fmt) == fmt.smallest_subnormal and from_ordinal(-1, fmt) == -fmt.smallest_subnormal
    assert math.isinf(from_ordinal(ordinal(fmt.max_finite, fmt) + 1, fmt))  # past the largest: infinity


def _drawn(dtype: str, form: str, finite: bool, examples: int = 200) -> list[Draw]:
    seen: list[Draw] = []

    @seed(3)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batches(dtype, form, 16, finite))
    def collect(drawn: Draw) -> None:
        seen.append(drawn)

    collect()
    return seen


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logit_batches_are_exact_and_reach_every_region(dtype: str) -> None:
    fmt = float_format(dtype)
    drawn = _drawn(dtype, "logits", finite=False)
    x = np.array([v for d in drawn for v in d.x])
    y = np.array([v for d in drawn for v in d.y])
    assert all(len(d.x) == len(d.y) == 16 for d in drawn)  # one shape: compiled paths compile once
    finite = x[np.isfinite(x)]
    assert np.array_equal(round_to_format(finite, fmt), finite)  # what the framework receives, exactly
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    magnitude = np.abs(finite[finite != 0])
    assert (magnitude < fmt.smallest_normal).any() and (magnitude > 2.0**64).any()  # subnormals, huge numbers
    assert ((magnitude > 16) & (magnitude < 128)).sum() > 10  # where σ saturates and e^x overflows
    assert {0.0, 1.0, 0.5} <= set(y.tolist())
    assert ((y > 0) & (y < 2.0**-8)).any() and ((y > 1) | (y < 0)).any() and ((y > 0.5) & (y < 1)).any()
    assert any(d.weight is not None for d in drawn) and any(d.pos_weight is not None for d in drawn)


def test_finite_batches_hold_no_infinity_or_nan_and_probabilities_stay_near_their_ends() -> None:
    logits = _drawn("float32", "logits", finite=True)
    assert all(math.isfinite(v) for d in logits for v in d.x)
    probs = _drawn("float16", "probs", finite=True)
    p = np.array([v for d in probs for v in d.x])
    inside = p[(p >= 0) & (p <= 1)]
    assert (inside > 0.999).any() and ((inside > 0) & (inside < 1e-4)).any()
    assert ((p < 0) | (p > 1)).any()  # out of range too: what a framework does there is judged
    assert all(d.pos_weight is None for d in probs)  # BCE of probabilities has no pos_weight


def test_a_draw_becomes_a_case_of_its_dtype() -> None:
    drawn = Draw("float16", "logits", (1.0, -0.5), (0.0, 1.0), None, (2.0, 3.0))
    case = drawn.case("fuzz-1", ("derivative",))
    assert case.family == "fuzz" and case.tags == ("fuzz", "derivative") and case.dtypes == ("float16",)
    assert case.weight is None and case.pos_weight.tolist() == [2.0, 3.0]
    assert case.inputs("float16").x.dtype == np.float16
