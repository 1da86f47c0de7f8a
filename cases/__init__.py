"""Shared inputs: the same bytes go to every framework."""

from cases.bench import BENCH_LOGIT_RANGE, bench_inputs, bytes_read
from cases.builtin import FAMILIES, SCALE_SIZES, SEED_MEAN_LOSS, builtin_cases, family_names
from cases.casefile import CaseFileError, case_entry, load_case_file, parse_cases
from cases.dtypes import DTYPES, FloatFormat, cast, float_format, round_in_format, round_to_format
from cases.errors import BadInput
from cases.extreme import logit_threshold_neighbours, logit_thresholds_for, prob_edges_for, round_exact
from cases.model import INPUT_FORMS, Case, CaseInputs, InputForm

__all__ = [
    "BENCH_LOGIT_RANGE",
    "DTYPES",
    "FAMILIES",
    "INPUT_FORMS",
    "SCALE_SIZES",
    "SEED_MEAN_LOSS",
    "BadInput",
    "Case",
    "CaseFileError",
    "CaseInputs",
    "FloatFormat",
    "InputForm",
    "bench_inputs",
    "builtin_cases",
    "bytes_read",
    "case_entry",
    "cast",
    "family_names",
    "float_format",
    "load_case_file",
    "logit_threshold_neighbours",
    "logit_thresholds_for",
    "parse_cases",
    "prob_edges_for",
    "round_exact",
    "round_in_format",
    "round_to_format",
]
