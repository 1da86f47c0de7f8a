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

from cases import BadInput, Case, float_format
from cases.casefile import hex_strings
from cases.dtypes import round_in_format, ulp_in_format
from harness.conformance.plan import BATCH_SIZE
from harness.findings import script
from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import INLINE_LIMIT
from harness.verdict.tolerance import NOT_FINDINGS, pass_ulp
from harness.verdict.ulp import same_values
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
        + source_of(round_in_format)
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
    if not adapters[row["framework"]].is_available():
        raise ReproError(f"framework {row['framework']!r}: {adapters[row['framework']].unavailable_reason()}")
    adapter = adapters[row["framework"]]()
    impl = adapter.implementation(row["impl"])
    dtype, fmt = row["dtype"], float_format(row["dtype"])
    y_dtype = case.y_dtype or dtype
    worst = tuple(json.loads(row["worst_index"])) if row["worst_index"] else ()
    check, mode = row["check"], row["mode"]
    recorded = float(row["got"]) if not pd.isna(row["got"]) else math.nan
    expected = float(row["expected"]) if not pd.isna(row["expected"]) else math.nan

    body = _inputs_block(case, dtype) + "\n" + adapter.repro_source(impl, mode if check != "path" else "eager")
    compiled = "None"
    if check == "path":
        body += "\nrun_eager = run\n\n" + adapter.repro_source(impl, mode) + "\nrun_compiled = run\nrun = run_eager\n"
        compiled = "run_compiled"
    settings = {"label": f"{row['impl']} {mode} {dtype} reduction={row['reduction']} {row['quantity']}",
                "check": check, "quantity": row["quantity"], "reduction": row["reduction"], "worst": list(worst),
                "recorded": recorded, "expected": expected, "recorded_error": row["error_type"],
                "format": [fmt.precision, fmt.emin, fmt.max_finite], "batch_size": BATCH_SIZE,
                "pass_ulp": pass_ulp(case.size if row["quantity"] == "loss" and row["reduction"] != "none" else None)}
    return (_header(row, folder, case, y_dtype) + f"SETTINGS = {_settings_literal(settings)}\n\n"
            + source_of(ulp_in_format, same_values, *_SCRIPT) + "\n" + body
            + f"\n\nif __name__ == \"__main__\":\n    sys.exit(reproduce(run, {compiled}, x, y, weight, pos_weight, "
            "SETTINGS))\n")


_SCRIPT = (script.ulp_distance, script._pick, script.observe, script.reproduce)


def _settings_literal(settings: dict[str, object]) -> str:
    """The settings as a Python literal (non-finite floats spelled so that they read back)."""
    items = ", ".join(f"{key!r}: {_literal(value) if isinstance(value, float) else repr(value)}"
                      for key, value in settings.items())
    return "{" + items + "}"


def _header(row: pd.Series, folder: Path, case: Case, y_dtype: str) -> str:
    """The script's docstring and the constants the framework call reads."""
    check, mode = row["check"], row["mode"]
    convention = f" ({row['deviation']})" if row["deviation"] else ""
    return f'''#!/usr/bin/env python3
"""Reproducer for bce-harness row {row['row_id']} of run {folder.name}.

{row['impl']}: {row['api']}
case {row['case']} ({case.description or case.family}), dtype {row['dtype']}, reduction {row['reduction']},
{row['quantity']}, check {check}, mode {mode}: the audit found `{row['status']}`{convention}.
{row['error_message'] or ''}
Needs only {row['framework']} and NumPy. Exit status 0: the problem reproduces; 1: the framework now gives the
right answer.
"""
from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

DTYPE = {row['dtype']!r}
Y_DTYPE = {y_dtype!r}
REDUCTION = {row['reduction']!r}
'''
