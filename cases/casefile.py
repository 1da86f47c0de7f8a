"""User case files: JSON, parsed strictly, with errors that name the case and the field.

Format (see README):
    {"cases": [{"name": "p0_y1", "input_form": "probs", "x": [0.0], "y": [1.0]}, ...]}
Values are JSON numbers or strings: "inf", "-inf", "nan", hex floats ("0x1p-149") and decimal strings
("1e-400"), all rounded correctly to float64; the shape follows the nesting.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cases.dtypes import DTYPES
from cases.errors import BadInput
from cases.model import INPUT_FORMS, Case

__all__ = ["MAX_CASE_FILE_BYTES", "CaseFileError", "case_entry", "hex_strings", "load_case_file", "parse_cases"]

MAX_CASE_FILE_BYTES = 64 * 1024 * 1024
_FIELDS = {"name", "input_form", "x", "y", "weight", "pos_weight", "family", "description", "tags", "y_dtype",
           "dtypes", "weight_dtype"}
_Y_DTYPES = {"float64", "float32", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"}
_SPECIAL = {"inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "nan": np.nan, "infinity": np.inf,
            "-infinity": -np.inf}


class CaseFileError(BadInput):
    """A case file that cannot be used; the message names the file, the case and the field."""


def _scalar(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _SPECIAL:
            return float(_SPECIAL[text])
        try:
            if text.lstrip("+-").startswith("0x"):
                return float.fromhex(text)
            exact = Fraction(text)
        except (ValueError, ZeroDivisionError, OverflowError):
            pass
        else:
            try:
                return float(exact)  # correctly rounded: "1e-400" → 0.0
            except OverflowError:
                return np.inf if exact > 0 else -np.inf  # "1e400" → inf
    raise CaseFileError(f"{where}: {value!r} is not a number (use a JSON number, 'inf', '-inf', 'nan', "
                        "a hex float like '0x1p-149' or a decimal string like '1e-400')")


def _array(value: Any, where: str) -> np.ndarray:
    """Nested JSON lists → float64 array; ragged nesting is an error."""
    def walk(item: Any, path: str) -> Any:
        if isinstance(item, list):
            return [walk(element, f"{path}[{i}]") for i, element in enumerate(item)]
        return _scalar(item, path)

    nested = walk(value, where)
    try:
        return np.array(nested, dtype=np.float64)
    except ValueError:
        raise CaseFileError(f"{where}: ragged nesting; every row must have the same length") from None


def _case(entry: Any, index: int, source: str) -> Case:
    label = f"{source}: case #{index}"
    if not isinstance(entry, dict):
        raise CaseFileError(f"{label}: expected an object with 'name', 'input_form', 'x', 'y'")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CaseFileError(f"{label}: field 'name' must be a non-empty string")
    label = f"{source}: case {name!r}"
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise CaseFileError(f"{label}: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_FIELDS))}")
    form = entry.get("input_form")
    if form not in INPUT_FORMS:
        raise CaseFileError(f"{label}: field 'input_form' is {form!r}; use 'logits' or 'probs'")
    for required in ("x", "y"):
        if required not in entry:
            raise CaseFileError(f"{label}: missing field {required!r}")
    arrays = {
        key: None if entry.get(key) is None else _array(entry[key], f"{label}: field {key!r}")
        for key in ("x", "y", "weight", "pos_weight")
    }
    y_dtype = entry.get("y_dtype")
    if y_dtype is not None and y_dtype not in _Y_DTYPES:
        raise CaseFileError(f"{label}: field 'y_dtype' is {y_dtype!r}; use one of {', '.join(sorted(_Y_DTYPES))}")
    weight_dtype = entry.get("weight_dtype")
    if weight_dtype is not None and weight_dtype not in DTYPES:
        raise CaseFileError(f"{label}: field 'weight_dtype' is {weight_dtype!r}; use one of {', '.join(DTYPES)}")
    dtypes = entry.get("dtypes")
    if dtypes is not None and (not isinstance(dtypes, list) or not dtypes or any(d not in DTYPES for d in dtypes)):
        raise CaseFileError(f"{label}: field 'dtypes' must be a non-empty list of {', '.join(DTYPES)}")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CaseFileError(f"{label}: field 'tags' must be a list of strings")
    for key in ("family", "description"):
        if key in entry and not isinstance(entry[key], str):
            raise CaseFileError(f"{label}: field {key!r} must be a string")
    x, y = arrays["x"], arrays["y"]
    assert x is not None and y is not None
    return Case(
        name=name,
        family=entry.get("family", "user"),
        input_form=form,
        x=x,
        y=y,
        weight=arrays["weight"],
        pos_weight=arrays["pos_weight"],
        description=entry.get("description", ""),
        tags=tuple(tags),
        y_dtype=y_dtype,
        dtypes=None if dtypes is None else tuple(dtypes),
        weight_dtype=weight_dtype,
    )


def parse_cases(document: Any, source: str = "case file") -> list[Case]:
    """Cases from an already-decoded JSON document."""
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        raise CaseFileError(f"{source}: expected a JSON object with a list under 'cases'")
    if not document["cases"]:
        raise CaseFileError(f"{source}: 'cases' is empty; give at least one case")
    out: list[Case] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["cases"]):
        case = _case(entry, index, source)
        if case.name in seen:
            raise CaseFileError(f"{source}: case {case.name!r}: duplicate name; names must be unique")
        seen.add(case.name)
        out.append(case)
    return out


def load_case_file(path: str | Path) -> list[Case]:
    """Read and validate a JSON case file."""
    file = Path(path)
    if not file.is_file():
        raise CaseFileError(f"case file {str(file)!r} does not exist; pass the path of a JSON case file")
    if file.stat().st_size > MAX_CASE_FILE_BYTES:
        raise CaseFileError(f"case file {str(file)!r} is larger than {MAX_CASE_FILE_BYTES >> 20} MiB; "
                            "split it into several files")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CaseFileError(f"case file {str(file)!r} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CaseFileError(f"case file {str(file)!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}") from None
    return parse_cases(document, source=file.name)


def hex_strings(values: np.ndarray) -> list[str]:
    """The values, flattened, as exact strings `_scalar` reads back: hex floats ("0x1.8p+1"), "inf", "nan"."""
    return [float(v).hex() if np.isfinite(v) else str(float(v)) for v in values.astype(np.float64).ravel().tolist()]


def _hex_values(values: np.ndarray) -> object:
    """Nested lists of exact strings (see hex_strings), shaped like `values`."""
    return np.array(hex_strings(values), dtype=object).reshape(values.shape).tolist()


def case_entry(case: Case) -> dict[str, object]:
    """The case as a case-file entry, with every value exact (hex floats): `parse_cases` reads it back."""
    entry: dict[str, object] = {"name": case.name, "family": case.family, "input_form": case.input_form,
                                "description": case.description, "tags": list(case.tags)}
    for key in ("x", "y", "weight", "pos_weight"):
        value = getattr(case, key)
        if value is not None:
            entry[key] = _hex_values(value)
    if case.y_dtype is not None:
        entry["y_dtype"] = case.y_dtype
    if case.dtypes is not None:
        entry["dtypes"] = list(case.dtypes)
    if case.weight_dtype is not None:
        entry["weight_dtype"] = case.weight_dtype
    return entry
