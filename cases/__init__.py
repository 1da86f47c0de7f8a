"""Shared inputs: the same bytes go to every framework."""

from cases.builtin import FAMILIES, SEED_MEAN_LOSS, builtin_cases, family_names
from cases.casefile import CaseFileError, load_case_file, parse_cases
from cases.dtypes import DTYPES, FloatFormat, cast, float_format, round_to_format
from cases.model import INPUT_FORMS, Case, CaseInputs, InputForm

__all__ = [
    "DTYPES",
    "FAMILIES",
    "INPUT_FORMS",
    "SEED_MEAN_LOSS",
    "Case",
    "CaseFileError",
    "CaseInputs",
    "FloatFormat",
    "InputForm",
    "builtin_cases",
    "cast",
    "family_names",
    "float_format",
    "load_case_file",
    "parse_cases",
    "round_to_format",
]
