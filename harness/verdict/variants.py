"""Which inputs a result is judged on: a case in a dtype, or the variant of it that an API makes before the loss
(label smoothing: BCE on the smoothed labels)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from cases import Case, CaseInputs
from cases.relations import smoothed
from implementations import Implementation

__all__ = ["ReferenceKey", "variant_inputs", "variant_of"]


class ReferenceKey(NamedTuple):
    """A case (by index) in a dtype, and the variant of its inputs ("" for the case itself, "smooth")."""

    case_index: int
    dtype: str
    variant: str = ""


def variant_of(impl: Implementation) -> str:
    """The variant of its inputs an implementation is judged on."""
    return "smooth" if impl.relation == "label_smoothing" else ""


@lru_cache(maxsize=64)
def _smoothed(case: Case) -> Case:
    return smoothed(case)


def variant_inputs(cases: Sequence[Case], key: ReferenceKey) -> tuple[CaseInputs, str]:
    """The inputs and input form of a reference key."""
    case = cases[key.case_index]
    if key.variant == "smooth":
        return _smoothed(case).inputs(key.dtype), case.input_form
    return case.inputs(key.dtype), case.input_form
