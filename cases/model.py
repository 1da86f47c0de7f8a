"""The case record: named, immutable inputs shared by every framework."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cases.dtypes import DTYPES, cast

__all__ = ["INPUT_FORMS", "Case", "CaseInputs", "InputForm"]

InputForm = Literal["logits", "probs"]
INPUT_FORMS: tuple[InputForm, ...] = ("logits", "probs")


def _frozen(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    array = np.array(values, dtype=np.float64, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True)
class CaseInputs:
    """A case's arrays rounded to one dtype: the exact bytes every framework receives."""

    dtype: str
    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None
    pos_weight: np.ndarray | None

    def arrays(self) -> dict[str, np.ndarray]:
        """The present arrays by argument name."""
        named = {"x": self.x, "y": self.y, "weight": self.weight, "pos_weight": self.pos_weight}
        return {name: value for name, value in named.items() if value is not None}

    def digest(self) -> str:
        """Content hash of the bytes, dtypes and shapes (used as the reference-cache key)."""
        h = hashlib.sha256(self.dtype.encode())
        for name, value in self.arrays().items():
            h.update(f"|{name}:{value.dtype.str}:{value.shape}|".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class Case:
    """One named input: logits or probabilities `x`, labels `y`, optional `weight` and `pos_weight`.

    Master values are float64; `inputs(dtype)` rounds them (once, ties to even) to the dtype under test, and the
    reference is computed from those rounded values, so every framework is judged on the same problem.

    `dtypes` limits the case to the dtypes it was derived for (None: every dtype). `y_dtype` and `weight_dtype`
    give the labels, and the weight and pos_weight, a dtype of their own (mixed dtypes). `recipe` is NumPy code that
    regenerates x, y (and weight, pos_weight) bit for bit, for cases too large to print in a reproducer.
    Tags steer the matrix: "path" (compiled paths run on it by default), "batch" (element alone vs in a batch),
    "full" (only with --full).
    """

    name: str
    family: str
    input_form: InputForm
    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None = None
    pos_weight: np.ndarray | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    y_dtype: str | None = None
    dtypes: tuple[str, ...] | None = None
    weight_dtype: str | None = None
    recipe: str = ""
    # not an argument: a case made by `dataclasses.replace` with other values starts with a cache of its own
    _cache: dict[str, CaseInputs] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a case needs a non-empty name")
        if self.input_form not in INPUT_FORMS:
            raise ValueError(f"case {self.name!r}: input_form {self.input_form!r} is not one of {INPUT_FORMS}")
        for attr in ("x", "y", "weight", "pos_weight"):
            object.__setattr__(self, attr, _frozen(getattr(self, attr)))
        object.__setattr__(self, "tags", tuple(self.tags))
        if self.weight_dtype is not None and self.weight_dtype not in DTYPES:
            raise ValueError(f"case {self.name!r}: unknown weight_dtype {self.weight_dtype!r}; known: "
                             f"{', '.join(DTYPES)}")
        if self.dtypes is not None:
            object.__setattr__(self, "dtypes", tuple(self.dtypes))
            unknown = [d for d in self.dtypes if d not in DTYPES]
            if unknown:
                raise ValueError(f"case {self.name!r}: unknown dtype {unknown[0]!r}; known: {', '.join(DTYPES)}")

    def digest(self) -> str:
        """Content hash of the master values (float64 bytes and shapes)."""
        h = hashlib.sha256(self.name.encode())
        for name in ("x", "y", "weight", "pos_weight"):
            value = getattr(self, name)
            if value is not None:
                h.update(f"|{name}:{value.shape}|".encode())
                h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def runs_in(self, dtype: str) -> bool:
        """Whether the case is meant for `dtype`."""
        return self.dtypes is None or dtype in self.dtypes

    def __str__(self) -> str:
        return self.name

    @property
    def size(self) -> int:
        return int(self.x.size)

    def inputs(self, dtype: str) -> CaseInputs:
        """The case rounded to `dtype` (labels to `y_dtype`, weight and pos_weight to `weight_dtype`, when the case
        sets them)."""
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        cached = self._cache.get(dtype)
        if cached is None:
            cached = CaseInputs(
                dtype=dtype,
                x=cast(self.x, dtype),
                y=cast(self.y, self.y_dtype or dtype),
                weight=None if self.weight is None else cast(self.weight, self.weight_dtype or dtype),
                pos_weight=None if self.pos_weight is None else cast(self.pos_weight, self.weight_dtype or dtype),
            )
            for value in cached.arrays().values():
                value.flags.writeable = False
            self._cache[dtype] = cached
        return cached
