"""Floating-point formats the harness speaks of, by their NumPy names.

Everything that needs a format's properties (precision, exponent range, largest finite value) asks here, so the
oracle, the comparison and the case generators agree on what "one ULP of float16" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np

__all__ = ["DTYPES", "FloatFormat", "cast", "float_format", "round_in_format", "round_to_format", "ulp_in_format"]


@dataclass(frozen=True, slots=True)
class FloatFormat:
    """An IEEE-style binary format: `precision` significand bits (implicit bit included), `emin` the exponent of
    the smallest normal number."""

    name: str
    numpy_dtype: np.dtype
    precision: int
    emin: int
    max_finite: float

    @property
    def smallest_normal(self) -> float:
        return float(2.0**self.emin)

    @property
    def smallest_subnormal(self) -> float:
        return float(2.0 ** (self.emin - self.precision + 1))

    @property
    def eps(self) -> float:
        """Distance from 1 to the next larger number."""
        return float(2.0 ** (1 - self.precision))

    def ulp(self, value: np.ndarray | float) -> np.ndarray:
        """The spacing of this format at |value| (below the smallest normal: the smallest subnormal).

        For |value| at or above the largest finite number the spacing of the top binade is returned, so that
        an overflowing exact value is still measured in a meaningful unit.
        """
        return ulp_in_format(value, self.precision, self.emin, self.max_finite)


def ulp_in_format(value: np.ndarray | float, precision: int, emin: int, max_finite: float) -> np.ndarray:
    """The spacing at |value| of the binary format with `precision` bits, `emin`, `max_finite` (see ulp)."""
    magnitude = np.abs(np.asarray(value, dtype=np.float64))
    magnitude = np.where(np.isfinite(magnitude), magnitude, max_finite)
    _, exponent = np.frexp(magnitude)  # magnitude = m * 2**exponent with m in [0.5, 1)
    binade = np.where(magnitude == 0, emin, np.clip(exponent - 1, emin, math.frexp(max_finite)[1] - 1))
    return np.ldexp(1.0, binade - precision + 1)


def round_in_format(values: np.ndarray | float, precision: int, emin: int, max_finite: float,
                    quantum: np.ndarray | None = None) -> np.ndarray:
    """Round float64 values once, to nearest with ties to even, onto the format's grid (as float64). `quantum`:
    the format's spacing at the values, where the caller has it already."""
    v = np.asarray(values, dtype=np.float64)
    if quantum is None:
        quantum = ulp_in_format(v, precision, emin, max_finite)
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = np.rint(v / quantum) * quantum
        return np.where(np.abs(rounded) > max_finite, np.copysign(np.inf, v), rounded)


def _format(name: str, dtype: np.dtype) -> FloatFormat:
    info = ml_dtypes.finfo(dtype)
    return FloatFormat(
        name=name,
        numpy_dtype=np.dtype(dtype),
        precision=int(info.nmant) + 1,
        emin=int(info.minexp),
        max_finite=float(info.max),
    )


DTYPES: dict[str, FloatFormat] = {
    "float64": _format("float64", np.dtype(np.float64)),
    "float32": _format("float32", np.dtype(np.float32)),
    "float16": _format("float16", np.dtype(np.float16)),
    "bfloat16": _format("bfloat16", np.dtype(ml_dtypes.bfloat16)),
}


def float_format(name: str) -> FloatFormat:
    """Look up a format by its NumPy name; a clear error lists the known ones."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None


def round_to_format(values: np.ndarray | float, fmt: FloatFormat) -> np.ndarray:
    """Round float64 values once, to nearest with ties to even, onto `fmt`'s grid; the result stays float64.

    Done here rather than by `astype`, because ml_dtypes converts float64 → bfloat16 through float32 and so
    rounds twice (1 + 2**-8 + 2**-30 becomes 1.0 instead of 1 + 2**-7). Scaling by a power of two and `rint`
    are exact, so this is a single correct rounding, overflow to ±inf and gradual underflow included.
    """
    return round_in_format(values, fmt.precision, fmt.emin, fmt.max_finite)


def cast(values: np.ndarray, dtype_name: str) -> np.ndarray:
    """Round float64 master values to the named float dtype (once, ties to even), or convert to an int/bool dtype."""
    if dtype_name in DTYPES:
        fmt = DTYPES[dtype_name]
        return round_to_format(values, fmt).astype(fmt.numpy_dtype)
    return np.asarray(values).astype(np.dtype(dtype_name))
