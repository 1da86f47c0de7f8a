"""Reproducers: a standalone script per finding (its minimal example) or per row, using only that framework and
NumPy.

The script carries the exact inputs (hex floats of the values as rounded to the dtype; large inputs are
regenerated from their seed and checked against a hash), calls the framework exactly as the audit did (the
adapter's own source), prints the framework's output beside the exact value, and exits 0 when it reproduces
the output the audit recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import BadInput, Case, CaseInputs, float_format, round_to_format
from cases.casefile import hex_strings
from cases.dtypes import round_in_format, ulp_in_format
from harness.conformance.plan import BATCH_SIZE
from harness.conformance.relations import RELATIONS, relation_pairs
from harness.findings import script
from harness.findings.grouping import example_fields, inputs_at, representative
from harness.findings.signature import signatures
from harness.findings.titles import title_of
from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import INLINE_LIMIT
from harness.verdict.derivatives import derivative_reference
from harness.verdict.oracle import reference
from harness.verdict.tolerance import NOT_FINDINGS, pass_ulp
from harness.verdict.ulp import same_values
from harness.verdict.variants import ReferenceKey, variant_inputs, variant_of
from implementations import Adapter, Implementation, Unsupported, adapter_classes
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


def _row(table: pd.DataFrame, row_id: str, run_dir: Path) -> pd.Series:
    found = table[table["row_id"] == row_id]
    if found.empty:
        raise ReproError(f"no row {row_id!r} in {str(run_dir)!r}; row ids are in conformance.parquet and report.md, "
                         "finding ids in findings.json")
    return found.iloc[0]


def _case(cases: dict[str, Case], row: pd.Series) -> Case:
    case = cases.get(row["case"])
    if case is None:
        raise RunFolderError(f"case {row['case']!r} is missing from the run's cases.json; rerun the audit")
    return case


def reproducer(run_dir: str | Path, identifier: str, framework: str | None = None) -> str:
    """The standalone script reproducing a finding (by `finding_id`: its minimal example, one element where the
    behaviour is element-wise; in `framework`, when given) or one row (by `row_id`) of the run in `run_dir`."""
    folder = Path(run_dir)
    store = RunStore(folder)
    store.read_meta()
    findings = store.findings() if store.has_findings() else pd.DataFrame(columns=["finding_id"])
    chosen = findings[findings["finding_id"] == identifier]
    table = store.conformance()
    if chosen.empty:
        row = _row(table, identifier, folder)
        if row["status"] in NOT_FINDINGS:
            raise ReproError(f"row {identifier} is {row['status']}: there is nothing to reproduce")
        cases = store.read_cases()
        return _script(folder, row, _case(cases, row), cases=cases)
    finding, cases = chosen.iloc[0], store.read_cases()
    if framework is not None and framework not in finding["frameworks"]:
        raise ReproError(f"finding {identifier} does not involve {framework}; it holds in "
                         f"{', '.join(finding['frameworks'])}")
    if framework is not None and str(finding["example_impl"]).split(".")[0] != framework:
        finding = _example_in(table, cases, finding, framework)
    return _finding_script(folder, table, cases, finding)


def _example_in(table: pd.DataFrame, cases: dict[str, Case], finding: pd.Series, framework: str) -> pd.Series:
    """The finding with its minimal example taken from `framework`'s rows (the simplest one, as the findings
    table picks its own)."""
    rows = table[table["row_id"].isin(list(finding["row_ids"])) & (table["framework"] == framework)]
    key = (finding["kind"], finding["family"], finding["region"], finding["failure"])
    examples = [s.example for row in rows.itertuples(index=False)
                for s in signatures(row, cases.get(str(row.case)), {}) if s.key == key]
    if not examples:  # a mean that shares an element-wise row's problem: that row has the example
        return finding
    example = representative(examples, cases)
    changed = finding.copy()
    for name, value in example_fields(str(finding["kind"]), example, cases).items():
        changed[name] = value
    changed["title"] = title_of({str(k): v for k, v in changed.items()}, example)
    return changed


def _finding_script(folder: Path, table: pd.DataFrame, cases: dict[str, Case], finding: pd.Series) -> str:
    """A finding's minimal example: its representative row, cut down to the one element that shows the problem
    (reduction none: that element's own loss or gradient, against its exact value)."""
    row = _row(table, finding["example_row"], folder)
    case = _case(cases, row)
    if finding["minimal"] != "element":
        return _script(folder, row, case, cases=cases)
    recorded = float(finding["got"]) if row["reduction"] == "none" else math.nan  # a mean's gradient is g / n
    element, row = one_element(case, row, tuple(json.loads(finding["example_index"])), recorded)
    return _script(folder, row, element, f"finding {finding['finding_id']}: {finding['title']}")


def one_element(case: Case, row: pd.Series, index: tuple[int, ...],
                recorded: float = math.nan) -> tuple[Case, pd.Series]:
    """The element of `case` at `index` as a case of its own (its weight and pos_weight at that element), and the
    row as it reads for that element alone: reduction none, the element's exact value, and what the audit
    `recorded` there."""
    at = {name: None if value is None else np.array([value])
          for name, value in inputs_at(case.inputs(row["dtype"]), index).items()}
    x, y = at["x"], at["y"]
    assert x is not None and y is not None
    element = Case(f"{case.name}{list(index)}", case.family, case.input_form, x, y, weight=at["weight"],
                   pos_weight=at["pos_weight"], description=f"element {list(index)} of {case.name}",
                   y_dtype=case.y_dtype, weight_dtype=case.weight_dtype)
    hi, lo = _exact_element(element, row)
    expected = float(round_to_format(np.asarray(hi + lo), float_format(row["dtype"])).ravel()[0])
    cut = row.copy()
    cut["case"], cut["reduction"], cut["worst_index"] = element.name, "none", "[0]"
    cut["expected"], cut["got"] = expected, recorded
    return element, cut


def _source_literal(source: str) -> str:
    """Source code as a string literal that reads as the code itself (a raw triple-quoted string where it can)."""
    if "'''" in source or source.endswith("\\"):
        return repr(source)
    return "r'''" + source + "'''"


def _exact_element(element: Case, row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The exact value of the row's quantity on a one-element case, as the audit judged it (on the inputs its
    implementation is judged on: label smoothing's are smoothed)."""
    adapters = adapter_classes()
    impl = adapters[row["framework"]].implementation(row["impl"]) if row["framework"] in adapters else None
    inputs, form = variant_inputs([element], ReferenceKey(0, row["dtype"], variant_of(impl) if impl else ""))
    quantity = str(row["quantity"])
    if quantity in ("loss", "grad"):
        exact = reference(inputs, form)
        hi, lo, _band = exact.loss("none") if quantity == "loss" else exact.grad("none")
        return hi, lo
    want = derivative_reference(inputs, form).quantity(quantity, "none")
    return want.hi, want.lo


def _script(folder: Path, row: pd.Series, case: Case, subject: str = "", cases: dict[str, Case] | None = None
            ) -> str:
    """The reproducer of `row` (a row of the run, or one cut down to an element) on `case` (`cases`: the run's,
    where an identity's partner is found)."""
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

    settings = {"label": f"{row['impl']} {mode} {dtype} reduction={row['reduction']} {row['quantity']}",
                "check": check, "quantity": row["quantity"], "reduction": row["reduction"], "worst": list(worst),
                "recorded": recorded, "expected": expected, "recorded_error": row["error_type"],
                "format": [fmt.precision, fmt.emin, fmt.max_finite], "batch_size": BATCH_SIZE,
                "shape": list(_result_shape(case.inputs(dtype), row["quantity"], row["reduction"])),
                "pass_ulp": pass_ulp(case.size if row["quantity"] == "loss" and row["reduction"] != "none" else None)}
    if check == "relation" and row["relation"] == "backend":
        raise ReproError(f"row {row['row_id']} compares {row['impl']} with the same API on another backend, in "
                         "another process (a package holds one backend per process): reproduce each side's own row "
                         "(check reference) on this case instead")
    if check == "relation":
        body, settings = _relation_body(adapter, row, case, cases or {case.name: case}, settings)
        other, partner = "run_partner", ", partner=(x_partner, y_partner, weight_partner, pos_weight_partner)"
    else:
        body, other, partner = _body(adapter, impl, case, dtype, mode, check, row["quantity"]), "None", ""
        other = "run_compiled" if check == "path" else other
    if row["error_type"] == "PathDtype":  # the dtypes the framework returns, recorded on their way to NumPy
        body += _DTYPE_HOOK
        partner = ", seen=SEEN_DTYPES"
    return (_header(row, folder, case, y_dtype, subject) + f"SETTINGS = {_settings_literal(settings)}\n\n"
            + source_of(ulp_in_format, same_values, *_SCRIPT) + "\n" + body
            + f"\n\nif __name__ == \"__main__\":\n    sys.exit(reproduce(run, {other}, x, y, weight, pos_weight, "
            f"SETTINGS{partner}))\n")


def _result_shape(inputs: CaseInputs, quantity: str, reduction: str) -> tuple[int, ...]:
    """The shape a result must have: x's for what is per element, a weight's for its derivative, else ()."""
    if quantity in ("grad_weight", "grad_pos_weight"):
        value = inputs.weight if quantity == "grad_weight" else inputs.pos_weight
        return () if value is None else value.shape
    if quantity == "grad_y":
        return inputs.y.shape
    per_element = quantity in ("grad", "grad2") or reduction == "none"
    return inputs.x.shape if per_element else ()


def _body(adapter: Adapter, impl: Implementation, case: Case, dtype: str, mode: str, check: str,
          quantity: str) -> str:
    """The inputs and the framework call (`run`; a path row's `run_compiled` too)."""
    body = _inputs_block(case, dtype) + "\n" + _source(adapter, impl, "eager" if check == "path" else mode, quantity)
    if check == "path":
        compiled = _source(adapter, impl, mode, quantity)
        body += "\nrun_eager = run\n\n" + compiled + "\nrun_compiled = run\nrun = run_eager\n"
    return body


def _source(adapter: Adapter, impl: Implementation, mode: str, quantity: str) -> str:
    """`run` returning (loss, the quantity): the gradient's, or a further derivative's (the adapter's own)."""
    if quantity in ("loss", "grad"):
        return adapter.repro_source(impl, mode)
    try:
        return adapter.repro_derivative_source(impl, quantity)
    except Unsupported as exc:
        raise ReproError(f"no reproducer for {quantity} of {impl.impl}: {exc}") from None


def _relation_body(adapter: Adapter, row: pd.Series, case: Case, cases: dict[str, Case],
                   settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An identity's two sides: the partner's inputs and call (`*_partner`, `run_partner`), then the base's."""
    listed = list(cases.values())
    pair = next((p for p in relation_pairs(type(adapter), listed, [row["dtype"]], [row["device"]])
                 if p.relation == row["relation"] and p.impl == row["impl"] and listed[p.case].name == case.name
                 and p.base.reduction == row["reduction"]), None)
    if pair is None:
        raise ReproError(f"row {row['row_id']}: the identity {row['relation']!r} has no pair in the run's cases")
    relation = RELATIONS[pair.relation]
    base_case, partner_case = listed[pair.base.case_index], listed[pair.partner.case_index]
    quantity = str(row["quantity"])
    # the partner's call runs in a namespace of its own: both sides define `run` and their helpers
    source = adapter.repro_source(adapter.implementation(pair.partner.impl), "eager")
    partner = (_inputs_block(partner_case, row["dtype"]) + "x_partner, y_partner, weight_partner, pos_weight_partner"
               " = x, y, weight, pos_weight\n\n"
               f"PARTNER_SOURCE = {_source_literal(source)}\n"
               "partner_namespace = dict(globals())\n"
               "exec(PARTNER_SOURCE, partner_namespace)  # the partner API's call, in a namespace of its own\n"
               "run_partner = partner_namespace['run']\n\n")
    base = _inputs_block(base_case, row["dtype"]) + "\n" + adapter.repro_source(
        adapter.implementation(pair.base.impl), "eager")
    factor = relation.loss_factor if quantity == "loss" else relation.grad_factor
    settings = {**settings, "factor": factor, "reversed": relation.reversed,
                "statement": f"{relation.statement} ({pair.partner.impl} on {partner_case.name} against "
                             f"{pair.base.impl} on {base_case.name})"}
    return partner + base, settings


_SCRIPT = (script.ulp_distance, script._pick, script.observe, script._one_path_raises, script.dtype_name,
           script._one_path_dtype, script.reproduce)
_DTYPE_HOOK = """
SEEN_DTYPES: list[str] = []
framework_to_numpy = to_numpy


def to_numpy(values):  # every result passes here: its dtype is recorded on the way
    SEEN_DTYPES.append(dtype_name(values))
    return framework_to_numpy(values)
"""


def _settings_literal(settings: dict[str, object]) -> str:
    """The settings as a Python literal (non-finite floats spelled so that they read back)."""
    items = ", ".join(f"{key!r}: {_literal(value) if isinstance(value, float) else repr(value)}"
                      for key, value in settings.items())
    return "{" + items + "}"


def _header(row: pd.Series, folder: Path, case: Case, y_dtype: str, subject: str = "") -> str:
    """The script's docstring and the constants the framework call reads."""
    check, mode = row["check"], row["mode"]
    convention = f" ({row['deviation']})" if row["deviation"] else ""
    what = subject or f"row {row['row_id']}"
    return f'''#!/usr/bin/env python3
"""Reproducer for bce-harness {what} of run {folder.name}.

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
W_DTYPE = {case.weight_dtype or row['dtype']!r}
REDUCTION = {row['reduction']!r}
'''
