"""Reproducers: a standalone script per discrepancy, using only that framework and NumPy.

The script carries the exact inputs (hex floats of the values as rounded to the dtype; large inputs are
regenerated from their seed and checked against a hash), calls the framework exactly as the audit did (the
adapter's own source), prints the framework's output beside the exact value, and exits 0 when it reproduces
the output the audit recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from cases import BadInput, Case, FloatFormat, float_format
from cases.casefile import hex_strings
from cases.dtypes import round_in_format, ulp_in_format
from harness.conformance.plan import BATCH_SIZE
from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import INLINE_LIMIT
from harness.verdict.tolerance import NOT_FINDINGS
from implementations import adapter_classes
from implementations.base import source_of

__all__ = ["ReproError", "reproducer"]


class ReproError(BadInput):
    """No reproducer can be made for that row; the message says why."""


def _hex_literal(values: np.ndarray) -> str:
    flat = hex_strings(values)
    parse = "float.fromhex(v) if v[0] != 'n' and 'inf' not in v else float(v)"
    return f"np.array([{parse} for v in {flat!r}]).reshape({values.shape!r})"


def _inputs_block(case: Case, dtype: str) -> str:
    """Python that defines x, y, weight, pos_weight (float64 arrays holding values exact in the dtypes)."""
    inputs = case.inputs(dtype)
    if case.size <= INLINE_LIMIT or not case.recipe:
        lines = [f"x = {_hex_literal(inputs.x)}", f"y = {_hex_literal(inputs.y.astype(np.float64))}"]
        for name in ("weight", "pos_weight"):
            value = getattr(inputs, name)
            lines.append(f"{name} = {_hex_literal(value) if value is not None else None}")
        return "\n".join(lines) + "\n"
    fmt = float_format(dtype)
    rounding = f"round_in_format(values, {fmt.precision}, {fmt.emin}, {fmt.max_finite!r})"
    return (
        "# the inputs are large: regenerate them from the seed, check the bytes, round once to the dtype\n"
        + source_of(ulp_in_format, round_in_format)
        + f"\n{case.recipe.strip()}\n"
        + "weight = pos_weight = None\n"
        + "digest = hashlib.sha256(" + repr(case.name) + ".encode())\n"
        + "for name, values in (('x', x), ('y', y)):\n"
        + "    digest.update(f'|{name}:{values.shape}|'.encode())\n"
        + "    digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())\n"
        + f"assert digest.hexdigest() == {case.digest()!r}, 'regenerated inputs differ from the audit'\n"
        + f"x = {rounding.replace('values', 'x')}\n"
        + (f"y = {rounding.replace('values', 'y')}\n" if case.y_dtype is None else "")
    )


def _literal(value: float) -> str:
    return repr(value) if math.isfinite(value) else f"float({str(value)!r})"


def _row(run_dir: Path, row_id: str) -> pd.Series:
    table = RunStore(run_dir).conformance()
    found = table[table["row_id"] == row_id]
    if found.empty:
        raise ReproError(f"no row {row_id!r} in {str(run_dir)!r}; row ids are in conformance.parquet and report.md")
    return found.iloc[0]


def reproducer(run_dir: str | Path, row_id: str) -> str:
    """The standalone script reproducing row `row_id` of the run in `run_dir`."""
    folder = Path(run_dir)
    store = RunStore(folder)
    store.read_meta()
    row = _row(folder, row_id)
    if row["status"] in NOT_FINDINGS:
        raise ReproError(f"row {row_id} is {row['status']}: there is nothing to reproduce")
    cases = store.read_cases()
    case = cases.get(row["case"])
    if case is None:
        raise RunFolderError(f"case {row['case']!r} is missing from the run's cases.json; rerun the audit")
    adapters = adapter_classes()
    if row["framework"] not in adapters:
        raise ReproError(f"framework {row['framework']!r} has no adapter here; install the plugin that provides it")
    adapter = adapters[row["framework"]]()
    impl = adapter.implementation(row["impl"])
    dtype, fmt = row["dtype"], float_format(row["dtype"])
    y_dtype = case.y_dtype or dtype
    worst = tuple(json.loads(row["worst_index"])) if row["worst_index"] else ()
    check, mode = row["check"], row["mode"]
    recorded = float(row["got"]) if not pd.isna(row["got"]) else math.nan
    expected = float(row["expected"]) if not pd.isna(row["expected"]) else math.nan

    body = _inputs_block(case, dtype) + "\n" + adapter.repro_source(impl, mode if check != "path" else "eager")
    if check == "path":
        body += "\nrun_eager = run\n\n" + adapter.repro_source(impl, mode) + "\nrun_compiled = run\n"
    return _header(row, folder, case, y_dtype, worst, recorded, expected) + body + _footer(row, fmt)


def _header(row: pd.Series, folder: Path, case: Case, y_dtype: str, worst: tuple[int, ...], recorded: float,
            expected: float) -> str:
    """The script's docstring and constants: what the audit recorded, and what the right answer is."""
    row_id, dtype, check, mode = row["row_id"], row["dtype"], row["check"], row["mode"]
    convention = f" ({row['deviation']})" if row["deviation"] else ""
    compared_with = {"path": "eager result", "batch": "element computed alone"}.get(
        check, "exact value, rounded to DTYPE")
    return f'''#!/usr/bin/env python3
"""Reproducer for bce-harness row {row_id} of run {folder.name}.

{row['impl']}: {row['api']}
case {row['case']} ({case.description or case.family}), dtype {dtype}, reduction {row['reduction']},
{row['quantity']}, check {check}, mode {mode}: the audit found `{row['status']}`{convention}.
{row['error_message'] or ''}
Needs only {row['framework']} and NumPy. Exit status 0: reproduced.
"""
from __future__ import annotations

import hashlib
import math
import sys

import numpy as np

DTYPE = {dtype!r}
Y_DTYPE = {y_dtype!r}
REDUCTION = {row['reduction']!r}
QUANTITY = {row['quantity']!r}
WORST = {worst!r}  # the element with the largest error (empty: a scalar)
RECORDED = {_literal(recorded)}  # what the audit got there
EXPECTED = {_literal(expected)}  # the {compared_with}
RECORDED_ERROR = {row['error_type']!r}

'''


def _footer(row: pd.Series, fmt: FloatFormat) -> str:
    """The script's `main`: run the framework, compare, and say whether the audit's output came back."""
    check, mode = row["check"], row["mode"]
    ulp_source = source_of(ulp_in_format)
    return f'''

{ulp_source}

def main():
    try:
        if {check!r} == "batch":
            index = np.resize(np.arange(x.size), {BATCH_SIZE})
            alone = [run(x.ravel()[i:i + 1], y.ravel()[i:i + 1], None, None) for i in range(x.size)]
            loss, grad = run(x.ravel()[index], y.ravel()[index], None, None)
            single = np.concatenate([a[0 if QUANTITY == "loss" else 1] for a in alone])[index]
            result = loss if QUANTITY == "loss" else grad
            differ = np.flatnonzero((result != single) & ~(np.isnan(result) & np.isnan(single)))
            print(f"{{differ.size}} of {{result.size}} batch positions differ from the element computed alone")
            position = differ[0] if differ.size else 0
            got, reference = float(result[position]), float(single[position])
        elif {check!r} == "path":
            eager, compiled = run_eager(x, y, weight, pos_weight), run_compiled(x, y, weight, pos_weight)
            result = compiled[0 if QUANTITY == "loss" else 1]
            got = float(np.asarray(result)[WORST])
            reference = float(np.asarray(eager[0 if QUANTITY == "loss" else 1])[WORST])
        else:
            loss, grad = run(x, y, weight, pos_weight)
            result = loss if QUANTITY == "loss" else grad
            if np.shape(result) != np.shape(x if QUANTITY == "grad" or REDUCTION == "none" else 0.0):
                print(f"result of shape {{np.shape(result)}} for inputs x {{x.shape}}, y {{y.shape}}")
                return 0
            got, reference = float(np.asarray(result)[WORST]), EXPECTED
    except Exception as exc:  # the framework raised: that is what the audit recorded, or not
        print(f"raised {{type(exc).__name__}}: {{exc}}")
        return 0 if type(exc).__name__ == RECORDED_ERROR else 1
    ulp = float(ulp_in_format(reference, {fmt.precision}, {fmt.emin}, {fmt.max_finite!r}))
    error = abs(got - reference) / ulp if math.isfinite(got) and math.isfinite(reference) else math.inf
    where = f"at index {{WORST}}" if WORST else "(scalar)"
    print(f"{row['impl']} {mode} {{DTYPE}} reduction={{REDUCTION}} {{QUANTITY}} {{where}}")
    print(f"  got       {{got!r}}")
    print(f"  expected  {{reference!r}}   error: {{error:.4g}} ULP of {{DTYPE}}")
    same = got == RECORDED or (math.isnan(got) and math.isnan(RECORDED))
    print("reproduced: the same output as the audit" if same else f"NOT reproduced: the audit recorded {{RECORDED!r}}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
'''
