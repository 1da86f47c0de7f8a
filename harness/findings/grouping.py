"""Rows into findings: every alarm row's signatures (`signature.py`), grouped by `finding_id`, each finding with
its scope (frameworks, dtypes, … as lists), its minimal example, a title in words, a likely cause, its known
upstream issues and a rank.

Rank (1 = most severe), by these keys in turn: alarms before documented conventions; inputs of ordinary use
before edges before what lies outside it (`regions.ordinariness`); a meaningless result (NaN, an infinity, 0.0 or
no correct digit, a raised error, a narrower result) before some lost digits; the worst status (nonfinite, fail,
error, crashed, timeout); more frameworks whose own APIs show it (not formulas the harness writes with their
operations: `Implementation.formula`), more frameworks, then more rows, first.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cases import Case, CaseInputs, float_format
from harness.conformance.relations import relation_pairs
from harness.findings.known import KnownIssue, link_known_issues
from harness.findings.signature import FINDING_STATUSES, NONFINITE_FAILURES, Signature, finding_id, signatures
from harness.findings.titles import title_of, why_of
from harness.verdict.regions import ordinariness
from harness.verdict.tolerance import SEVERITY
from implementations import adapter_classes

__all__ = ["FINDING_COLUMNS", "build_findings", "example_fields", "inputs_at", "representative", "signature_groups"]

FINDING_COLUMNS = [
    "finding_id", "rank", "title", "kind", "status", "family", "region", "failure", "why", "frameworks", "impls",
    "dtypes", "reductions", "quantities", "modes", "checks", "families", "rows", "elements", "x", "y", "weight",
    "pos_weight", "got", "expected", "ulp_error", "input_form", "minimal", "example_impl", "example_dtype",
    "example_mode", "example_reduction", "example_case", "example_row", "example_index", "convention",
    "known_issues", "onset", "repro", "row_ids",
]
_LISTS = ("frameworks", "impls", "dtypes", "reductions", "quantities", "modes", "checks", "families")
_GRAVE = NONFINITE_FAILURES | {"lost"}
_KIND_STATUS = {"precision": "fail", "nonfinite": "nonfinite", "convention": "deviation", "raises": "error",
                "crash": "crashed", "timeout": "timeout", "dtype": "fail", "broadcast": "fail", "batch": "fail"}


def _ordinariness(record: dict[str, Any]) -> int:
    """`regions.ordinariness`, and for what has no element region: an empty batch or a mismatched shape lie
    outside ordinary use, a reduction's size and a 0-d batch are edges; so is an example logit within a factor
    two of the dtype's largest number (±max: where x·y and x − x·y overflow)."""
    kind, region = record["kind"], record["region"]
    if kind == "broadcast" or region == "empty inputs":
        return 2
    if kind == "reduction" or region == "0-d inputs":
        return 1
    near_max = abs(float(record["x"])) >= float_format(record["example_dtype"]).max_finite / 2
    return max(ordinariness(region), 1 if record["input_form"] == "logits" and near_max else 0)


def _damage(kind: str, region: str, failure: str) -> int:
    """0: the result is meaningless or missing; 1: some digits or bits are off."""
    if kind in ("raises", "crash", "timeout", "broadcast") or failure in _GRAVE:
        return 0
    return 0 if region in ("narrower result", "label dtype not promoted") else 1


def _status(kind: str, failure: str, rows: pd.DataFrame) -> str:
    """The status the finding's own problem has (a row may be worse for another of its problems)."""
    if kind in _KIND_STATUS:
        return _KIND_STATUS[kind]
    if failure in NONFINITE_FAILURES:
        return "nonfinite"
    return "fail" if "fail" in set(rows["status"]) or kind != "reduction" else "nonfinite"


def representative(examples: list[dict[str, Any]], cases: Mapping[str, Case]) -> dict[str, Any]:
    """The example that shows the problem most simply: one element before a whole case, a framework's own API
    before a formula written with its operations, element-wise before reduced, reference before compiled and
    batch, unweighted, the widest dtype that still fails, the smallest case."""
    formulas = _formulas()

    def key(example: dict[str, Any]) -> tuple[Any, ...]:
        case = cases.get(example["case"])
        weighted = case is not None and (case.weight is not None or case.pos_weight is not None)
        return ("x" not in example, formulas.get(example["impl"], False), example["reduction"] != "none",
                example["check"] != "reference", example["mode"] != "eager", weighted,
                -float_format(example["dtype"]).precision, case.size if case is not None else example.get("n", 0),
                example["row_id"])

    return min(examples, key=key)


@functools.cache
def _formulas() -> dict[str, bool]:
    """impl → whether it is a formula the harness writes (`Implementation.formula`), for the known adapters."""
    return {impl.impl: impl.formula for adapter in adapter_classes().values() for impl in adapter.implementations}


def _elements(examples: list[dict[str, Any]]) -> int:
    """How many failing elements the examples stand for: each element-wise group once (a mean or sum that shares
    its element-wise row's problem brings that row's example again)."""
    seen = {(e["row_id"], json.dumps(e.get("index", []))): int(e.get("count", 1)) for e in examples}
    return sum(seen.values())


def inputs_at(inputs: CaseInputs, index: tuple[int, ...]) -> dict[str, float | None]:
    """The inputs of one element (x, y, weight, pos_weight; weights broadcast to x; None where absent)."""
    return {name: None if value is None else float(np.broadcast_to(value.astype(np.float64), inputs.x.shape)[index])
            for name, value in (("x", inputs.x), ("y", inputs.y), ("weight", inputs.weight),
                                ("pos_weight", inputs.pos_weight))}


def example_fields(kind: str, example: dict[str, Any], cases: Mapping[str, Case]) -> dict[str, Any]:
    """A finding's columns that come from its minimal example: the element (with its weight and pos_weight),
    what came out there, and where it was found. A reduction's problem needs the whole reduction: its element
    is shown, its case reproduces it (`minimal`)."""
    case = cases.get(example["case"])
    weights: dict[str, float | None] = {"weight": None, "pos_weight": None}
    if case is not None and "index" in example:
        weights = inputs_at(case.inputs(example["dtype"]), tuple(example["index"]))
    return {
        "x": example.get("x", math.nan), "y": example.get("y", math.nan),
        **{name: math.nan if weights[name] is None else weights[name] for name in ("weight", "pos_weight")},
        "got": example.get("got", math.nan), "expected": example.get("expected", math.nan),
        "ulp_error": example.get("ulp", math.nan), "input_form": example["form"],
        "minimal": "element" if "x" in example and kind not in ("reduction", "relation") else "case",
        **{f"example_{name}": str(example[name]) for name in ("impl", "dtype", "mode", "reduction", "case")},
        "example_row": example["row_id"], "example_index": json.dumps(example.get("index", [])),
    }


def signature_groups(conformance: pd.DataFrame, cases: Mapping[str, Case]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Signature key → the alarm rows that show it (`rows`) and their examples (`examples`, one per row)."""
    alarms = conformance[conformance["status"].isin(FINDING_STATUSES)]  # schema 1 has no `failures`: left out
    elementwise: dict[tuple[Any, ...], list[Signature]] = {}
    for row in alarms.itertuples(index=False):  # a mean or sum shares the problems of its element-wise row
        if row.reduction == "none" and row.check == "reference" and row.status in ("fail", "nonfinite"):
            found = [s for s in signatures(row, cases.get(str(row.case)), {}) if s.kind in ("precision", "nonfinite")]
            elementwise[(row.impl, row.case, row.dtype, row.device, row.quantity, row.mode)] = found
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    sides: dict[tuple[Any, ...], list[Signature]] = {}  # a reference row's problems, for the identities it is in
    relations = [row for row in alarms.itertuples(index=False) if row.check == "relation"]
    for row in alarms.itertuples(index=False):
        if row.check == "relation":
            continue
        found = signatures(row, cases.get(str(row.case)), elementwise)
        if row.check == "reference":
            sides[(row.impl, row.case, row.dtype, row.device, row.reduction, row.quantity)] = found
        _add(groups, row, found)
    pairs = _pair_sides(cases) if relations else {}
    for row in relations:  # an identity broken by a side's own problem is that problem's: an attribute of it
        _add(groups, row, _sides_of(row, sides, pairs) or signatures(row, cases.get(str(row.case)), elementwise))
    return groups


def _add(groups: dict[tuple[str, ...], dict[str, Any]], row: Any, found: list[Signature]) -> None:
    for signature in found:
        group = groups.setdefault(signature.key, {"rows": [], "examples": []})
        group["rows"].append(row)
        group["examples"].append(signature.example)


def _sides_of(row: Any, sides: dict[tuple[Any, ...], list[Signature]],
              pairs: dict[tuple[str, str, str, str], list[tuple[str, str]]]) -> list[Signature]:
    """The problems of the two reference rows an identity's row compares (the pair's own cells), in the same
    dtype, reduction and quantity."""
    found: dict[tuple[str, ...], Signature] = {}
    for impl, name in pairs.get((row.framework, row.relation, row.impl, row.case), []):
        for signature in sides.get((impl, name, row.dtype, row.device, row.reduction, row.quantity), []):
            found.setdefault(signature.key, signature)
    return list(found.values())


def _pair_sides(cases: Mapping[str, Case]) -> dict[tuple[str, str, str, str], list[tuple[str, str]]]:
    """(framework, relation, row's implementation, row's case) → (implementation, case) of each side."""
    listed = list(cases.values())
    table: dict[tuple[str, str, str, str], list[tuple[str, str]]] = {}
    for framework, adapter in adapter_classes().items():
        for pair in relation_pairs(adapter, listed, [next(iter(adapter.dtypes))], ["cpu"]):
            if pair.base.reduction == "none":
                table[(framework, pair.relation, pair.impl, listed[pair.case].name)] = [
                    (side.impl, listed[side.case_index].name) for side in (pair.base, pair.partner)]
    return table


def _record(key: tuple[str, ...], group: dict[str, Any], cases: Mapping[str, Case],
            conventions: Mapping[str, str]) -> dict[str, Any]:
    kind, family, region, failure = key
    rows = pd.DataFrame(group["rows"]).drop_duplicates("row_id")
    example = representative(group["examples"], cases)
    record: dict[str, Any] = {
        "finding_id": finding_id(*key), "kind": kind, "family": family, "region": region, "failure": failure,
        "status": _status(kind, failure, rows),
        **{name: sorted(map(str, set(rows[column]))) for name, column in zip(
            _LISTS, ("framework", "impl", "dtype", "reduction", "quantity", "mode", "check", "family"), strict=True)},
        "rows": len(rows), "elements": _elements(group["examples"]), **example_fields(kind, example, cases),
        "convention": region if kind == "convention" else "", "onset": "", "row_ids": sorted(rows["row_id"]),
    }
    record["title"] = title_of(record, example)
    record["why"] = why_of(record, conventions.get(record["convention"], ""))
    return record


def _rank(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    formulas = _formulas()

    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        shipped = {impl.split(".")[0] for impl in record["impls"] if not formulas.get(impl, False)}
        return (record["kind"] == "convention", _ordinariness(record),
                _damage(record["kind"], record["region"], record["failure"]), SEVERITY.index(record["status"]),
                -len(shipped), -len(record["frameworks"]), -record["rows"], record["finding_id"])

    ranked = sorted(records, key=key)
    for rank, record in enumerate(ranked, 1):
        record["rank"] = rank
    return ranked


def build_findings(conformance: pd.DataFrame, cases: Mapping[str, Case], known: Sequence[KnownIssue] = (),
                   conventions: Mapping[str, str] | None = None, run_dir: str = "RUN_DIR",
                   onsets: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The findings of an audit table (one row per finding, `FINDING_COLUMNS`, rank order) and the stale known
    issues. `cases` by name (for weights and what a case is), `conventions`: id → reason, `onsets`: finding id →
    where its behaviour starts (the fuzzer's)."""
    if conformance.empty or "status" not in conformance.columns:
        return pd.DataFrame(columns=FINDING_COLUMNS), []
    groups = signature_groups(conformance, cases)
    records = _rank([_record(key, group, cases, conventions or {}) for key, group in groups.items()])
    frame = pd.DataFrame(records, columns=FINDING_COLUMNS)
    frame["repro"] = [f"python -m harness repro {run_dir} {fid}" for fid in frame["finding_id"]]
    frame["onset"] = [(onsets or {}).get(fid, "") for fid in frame["finding_id"]]
    links, stale = link_known_issues(frame, known, set(zip(conformance["impl"], conformance["dtype"], strict=True)))
    frame["known_issues"] = links
    return frame.reset_index(drop=True), stale
