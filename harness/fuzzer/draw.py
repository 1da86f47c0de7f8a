"""What the fuzzer draws: batches of one fixed shape whose inputs are bit patterns of the dtype under test.

A value drawn as a bit pattern makes every binade equally likely (subnormals are one binade's worth of
patterns, like any other), and the special values (±0, ±inf, NaN, the smallest subnormal and normal, the
largest finite number, ±1) come from a list of their own, so that each is as reachable as a binade. Labels come
from seven kinds (0, 1, ½, tiny, 1 − tiny, soft, out of range), weight and pos_weight are optional. Every value
is exact in the dtype (the master values are what the framework receives), so a case the fuzzer writes replays
bit for bit. A quarter of the logits come from the binades where BCE's behaviour changes in some dtype (`_TURNING`):
every binade stays reachable, and the ones that matter are often drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from cases import Case, FloatFormat, float_format, round_to_format

__all__ = ["LABEL_KINDS", "Draw", "batches", "bits_of", "from_ordinal", "ordinal", "value_of"]

LABEL_KINDS = ("zero", "one", "half", "tiny", "one_minus_tiny", "soft", "out_of_range")
_SPECIAL_ONE_IN = 8  # one value in eight comes from the special values, the rest are bit patterns
_TINY = 2.0**-8  # "tiny" labels and the weights' small ones lie below this
# |x| where BCE's behaviour changes in some dtype: σ saturates from 4.9 (bfloat16) to 36 (float64), e^x overflows
# at 88.7 (float32) and 709.8 (float64), float16's largest number is 65 504
_TURNING = (2.0**-4, 2.0**16)


def _unsigned(fmt: FloatFormat) -> np.dtype:
    return np.dtype(f"u{fmt.numpy_dtype.itemsize}")


def value_of(bits: int, fmt: FloatFormat) -> float:
    """The value of a bit pattern of the format, as a float64."""
    return float(np.array([bits], dtype=_unsigned(fmt)).view(fmt.numpy_dtype).astype(np.float64)[0])


def bits_of(value: float, fmt: FloatFormat) -> int:
    """The bit pattern of a value of the format."""
    return int(np.array([value]).astype(fmt.numpy_dtype).view(_unsigned(fmt))[0])


def _sign_mask(fmt: FloatFormat) -> int:
    return 1 << (8 * fmt.numpy_dtype.itemsize - 1)


def ordinal(value: float, fmt: FloatFormat) -> int:
    """The value's place on the format's ordered line: consecutive numbers have consecutive ordinals, ±0 is 0."""
    bits = bits_of(value, fmt)
    sign = _sign_mask(fmt)
    return -(bits & ~sign) if bits & sign else bits


def from_ordinal(place: int, fmt: FloatFormat) -> float:
    """The number at an ordinal (see `ordinal`)."""
    return value_of(place if place >= 0 else _sign_mask(fmt) | -place, fmt)


def _specials(fmt: FloatFormat, finite: bool) -> list[float]:
    values = [0.0, -0.0, 1.0, -1.0, fmt.smallest_subnormal, -fmt.smallest_subnormal, fmt.smallest_normal,
              -fmt.smallest_normal, fmt.max_finite, -fmt.max_finite]
    return values if finite else [*values, np.inf, -np.inf, np.nan]


def _fields(fmt: FloatFormat) -> tuple[int, int]:
    """The widths of the exponent and significand fields of the format's bit pattern."""
    mantissa = fmt.precision - 1
    return 8 * fmt.numpy_dtype.itemsize - 1 - mantissa, mantissa


@st.composite
def _magnitude(draw: Any, fmt: FloatFormat, low: float, high: float) -> float:
    """A finite number in [low, high] (both ≥ 0, in the format): its exponent field is drawn first, then its
    significand, so every binade in the range is alike (Hypothesis's integers lean towards small values: a bit
    pattern drawn whole would be mostly subnormal)."""
    _, mantissa = _fields(fmt)
    first, last = (bits_of(v, fmt) >> mantissa for v in (low, high))
    bits = draw(st.integers(first, last)) << mantissa | draw(st.integers(0, (1 << mantissa) - 1))
    return min(max(value_of(bits, fmt), low), high)


@st.composite
def _logit(draw: Any, fmt: FloatFormat, finite: bool) -> float:
    """A special value, or a finite number of either sign: in any binade, or (one draw in four) in the binades
    where BCE's behaviour changes in some dtype (`_TURNING`)."""
    kind = draw(st.integers(0, _SPECIAL_ONE_IN - 1))
    if kind == 0:
        return float(draw(st.sampled_from(_specials(fmt, finite))))
    low, high = _TURNING if kind <= _SPECIAL_ONE_IN // 4 else (0.0, fmt.max_finite)
    magnitude = draw(_magnitude(fmt, low, min(high, fmt.max_finite)))
    return -magnitude if draw(st.booleans()) else magnitude


@st.composite
def _probability(draw: Any, fmt: FloatFormat, finite: bool) -> float:
    """A probability near 0 or near 1 (1 − a bit pattern, rounded to the format), or a special or out-of-range
    value."""
    if draw(st.integers(0, _SPECIAL_ONE_IN - 1)) == 0:
        outside = [-fmt.smallest_subnormal, 1.0 + fmt.eps, 2.0, -1.0]
        return float(draw(st.sampled_from([0.0, 1.0, 0.5, *outside, *_specials(fmt, finite)[4:]])))
    small = draw(_magnitude(fmt, 0.0, 0.5))
    return float(round_to_format(1.0 - small, fmt)) if draw(st.booleans()) else small


@st.composite
def _label(draw: Any, fmt: FloatFormat) -> float:
    kind = draw(st.sampled_from(LABEL_KINDS))
    if kind in ("zero", "one", "half"):
        return {"zero": 0.0, "one": 1.0, "half": 0.5}[kind]
    if kind in ("tiny", "one_minus_tiny"):
        tiny = draw(_magnitude(fmt, fmt.smallest_subnormal, _TINY))
        return tiny if kind == "tiny" else float(round_to_format(1.0 - tiny, fmt))
    if kind == "soft":
        return float(round_to_format(draw(st.integers(1, 2**20 - 1)) / 2**20, fmt))
    return float(round_to_format(draw(st.sampled_from([-1.0, 2.0, -_TINY, 1.0 + _TINY, 1.5, -0.5])), fmt))


@st.composite
def _weight(draw: Any, fmt: FloatFormat) -> float:
    """0, 1, a small or a large positive weight (a bit pattern below or above 1, up to 2^8)."""
    kind = draw(st.integers(0, 3))
    if kind < 2:
        return float(kind == 1)
    return draw(_magnitude(fmt, _TINY, 1.0) if kind == 2 else _magnitude(fmt, 1.0, 2.0**8))


@dataclass(frozen=True, slots=True)
class Draw:
    """One drawn batch: master values, each exact in `dtype`."""

    dtype: str
    input_form: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    weight: tuple[float, ...] | None
    pos_weight: tuple[float, ...] | None

    def case(self, name: str, tags: tuple[str, ...] = ()) -> Case:
        def array(values: tuple[float, ...] | None) -> np.ndarray | None:
            return None if values is None else np.array(values, dtype=np.float64)

        return Case(name, "fuzz", self.input_form,  # type: ignore[arg-type]
                    np.array(self.x, dtype=np.float64), np.array(self.y, dtype=np.float64), array(self.weight),
                    array(self.pos_weight), description=f"a batch the fuzzer drew in {self.dtype}",
                    tags=("fuzz", *tags), dtypes=(self.dtype,))


def batches(dtype: str, input_form: str, size: int, finite: bool = False, weights: bool = True) -> Any:
    """Hypothesis strategy of `Draw`s of `size` elements (one shape, so compiled paths compile once)."""
    fmt = float_format(dtype)
    value = _logit(fmt, finite) if input_form == "logits" else _probability(fmt, finite)

    @st.composite
    def draw_batch(draw: Any) -> Draw:
        x = tuple(draw(st.lists(value, min_size=size, max_size=size)))
        y = tuple(draw(st.lists(_label(fmt), min_size=size, max_size=size)))
        weight = pos_weight = None
        if weights and draw(st.booleans()):
            weight = tuple(draw(st.lists(_weight(fmt), min_size=size, max_size=size)))
        if weights and input_form == "logits" and draw(st.booleans()):
            pos_weight = tuple(draw(st.lists(_weight(fmt), min_size=size, max_size=size)))
        return Draw(dtype, input_form, x, y, weight, pos_weight)

    return draw_batch()
