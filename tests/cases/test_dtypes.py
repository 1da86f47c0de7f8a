"""Rounding to each dtype and the ULP unit, against values known from the formats' definitions."""

from __future__ import annotations

import numpy as np
import pytest

from cases import DTYPES, cast, float_format, round_to_format


def test_bfloat16_rounds_once_not_through_float32() -> None:
    # 1 + 2^-8 + 2^-30 is above the midpoint between 1 and 1 + 2^-7: it must round up. Rounding through
    # float32 first lands exactly on the midpoint and ties to even (1.0).
    value = 1 + 2.0**-8 + 2.0**-30
    assert float(cast(np.array([value]), "bfloat16")[0]) == 1 + 2.0**-7


@pytest.mark.parametrize("name", ["float32", "float16"])
def test_rounding_matches_numpy_casts(name: str) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(20000) * np.exp(rng.uniform(-120, 120, 20000))
    with np.errstate(over="ignore"):
        expected = values.astype(DTYPES[name].numpy_dtype)
    np.testing.assert_array_equal(cast(values, name), expected)


def test_overflow_subnormals_and_specials() -> None:
    f16 = float_format("float16")
    rounded = round_to_format(np.array([65519.0, 65520.0, 2.0**-25, 2.0**-25 * 1.5, -0.0, np.nan, -np.inf]), f16)
    assert rounded[0] == 65504.0  # below the midpoint to the next binade
    assert rounded[1] == np.inf  # the midpoint ties to the (even) overflow
    assert rounded[2] == 0.0  # half the smallest subnormal ties to even (zero)
    assert rounded[3] == 2.0**-24
    assert np.signbit(rounded[4]) and np.isnan(rounded[5]) and rounded[6] == -np.inf


@pytest.mark.parametrize(
    ("name", "value", "ulp"),
    [
        ("float64", 1.0, 2.0**-52),
        ("float64", 0.0, 2.0**-1074),
        ("float32", 1.5, 2.0**-23),
        ("float32", 1e-45, 2.0**-149),
        ("float16", 65504.0, 32.0),
        ("float16", 0.0, 2.0**-24),
        ("bfloat16", 1.0, 2.0**-7),
        ("bfloat16", 3.0e38, 2.0**120),
    ],
)
def test_ulp(name: str, value: float, ulp: float) -> None:
    assert float(float_format(name).ulp(value)) == ulp
