"""The JSON case-file parser and its errors (each names the case and the field)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cases import CaseFileError, load_case_file, parse_cases


def test_values_specials_hex_and_decimals() -> None:
    (case,) = parse_cases({"cases": [{
        "name": "big", "input_form": "logits", "x": [[1e4, "-inf"], ["0x1p-149", "1e-400"]],
        "y": [[1, 0], [True, "1e400"]], "pos_weight": [3.0], "tags": ["extreme"], "y_dtype": "float32",
    }]})
    np.testing.assert_array_equal(case.x, [[1e4, -np.inf], [2.0**-149, 0.0]])
    np.testing.assert_array_equal(case.y, [[1, 0], [1, np.inf]])
    assert case.family == "user" and case.tags == ("extreme",) and case.weight is None
    assert case.pos_weight is not None and case.pos_weight.tolist() == [3.0]
    assert case.inputs("float16").x.dtype == np.float16 and case.inputs("float16").y.dtype == np.float32


def test_a_weight_of_its_own_dtype_round_trips() -> None:
    from cases import case_entry

    (case,) = parse_cases({"cases": [{"name": "w", "input_form": "logits", "x": [0.1, 2.0], "y": [0, 1],
                                      "weight": [0.1, 3.0], "weight_dtype": "float32"}]})
    inputs = case.inputs("bfloat16")
    assert inputs.x.dtype.name == "bfloat16" and inputs.weight is not None and inputs.weight.dtype == np.float32
    assert inputs.weight.tolist() == [float(np.float32(0.1)), 3.0]
    (again,) = parse_cases({"cases": [case_entry(case)]})
    assert again.weight_dtype == "float32" and again.inputs("bfloat16").weight.tolist() == inputs.weight.tolist()


def test_nan_and_shape_mismatch_are_valid_cases() -> None:
    (case,) = parse_cases({"cases": [{"name": "odd", "input_form": "probs", "x": ["nan", 0.5], "y": [[1], [0]]}]})
    assert np.isnan(case.x[0]) and case.y.shape == (2, 1)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"input_form": "logits", "x": [0], "y": [0]}, "case #0: field 'name'"),
        ({"name": "a", "input_form": "logit", "x": [0], "y": [0]}, "case 'a': field 'input_form' is 'logit'"),
        ({"name": "a", "input_form": "probs", "x": [0]}, "case 'a': missing field 'y'"),
        ({"name": "a", "input_form": "probs", "x": [0, "zero"], "y": [0, 0]}, "case 'a': field 'x'[1]: 'zero'"),
        ({"name": "a", "input_form": "probs", "x": [[0, 1], [0]], "y": [0]}, "case 'a': field 'x': ragged"),
        ({"name": "a", "input_form": "probs", "x": [0], "y": [0], "wieght": [1]}, "unknown field 'wieght'"),
        ({"name": "a", "input_form": "probs", "x": [0], "y": [0], "y_dtype": "int128"}, "field 'y_dtype'"),
        ({"name": "a", "input_form": "probs", "x": [0], "y": [0], "weight_dtype": "int8"}, "field 'weight_dtype'"),
        ({"name": "a", "input_form": "probs", "x": [0], "y": [None]}, "field 'y'[0]: None"),
    ],
)
def test_errors_name_case_and_field(entry: dict, fragment: str) -> None:
    with pytest.raises(CaseFileError) as raised:
        parse_cases({"cases": [entry]}, source="f.json")
    assert fragment in str(raised.value)
    assert str(raised.value).startswith("f.json: ")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="does not exist"):
        load_case_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"cases": [', encoding="utf-8")
    with pytest.raises(CaseFileError, match=r"not valid JSON.*line 1"):
        load_case_file(broken)
    duplicate = tmp_path / "dup.json"
    entry = {"name": "a", "input_form": "probs", "x": [0], "y": [0]}
    duplicate.write_text(json.dumps({"cases": [entry, entry]}), encoding="utf-8")
    with pytest.raises(CaseFileError, match="case 'a': duplicate name"):
        load_case_file(duplicate)
    with pytest.raises(CaseFileError, match="list under 'cases'"):
        parse_cases([entry])
