"""Identities across two frameworks (a `backend` pair: Keras on JAX against Keras on TensorFlow) between runs:
each run stores the outputs of the cells such an identity compares (`outputs.jsonl`), and a merge checks the
identities that no source could check alone (one run audited Keras on TensorFlow, another Keras on JAX)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cases import Case
from harness.conformance.plan import Cell
from harness.conformance.relations import Pair, relation_pairs
from harness.conformance.rows import Judge
from harness.store.folder import RunFolderError
from harness.store.schema import ConformanceRow
from implementations import Adapter, Output

__all__ = ["across_rows", "side_record"]

_KEY = ("impl", "case", "dtype", "device", "reduction")


def _array(values: np.ndarray | None) -> dict[str, Any] | None:
    if values is None:
        return None  # float64 values as JSON numbers round-trip exactly (NaN and ±inf as JSON's NaN, Infinity)
    return {"shape": list(values.shape), "values": np.asarray(values, dtype=np.float64).ravel().tolist()}


def side_record(judge: Judge, framework: str, cell: Cell, output: Output) -> dict[str, Any]:
    """One kept cell's output as a JSON record (the run's id and the framework's version with it)."""
    return {"run_id": judge.run_id, "framework": framework, "framework_version": judge.versions.get(framework, ""),
            "impl": cell.impl, "case": judge.cases[cell.case_index].name,
            "case_digest": judge.cases[cell.case_index].digest(), "dtype": cell.dtype, "device": cell.device,
            "reduction": cell.reduction, "api": output.api, "out_dtype": output.out_dtype,
            "grad_dtype": output.grad_dtype, "loss": _array(output.loss), "grad": _array(output.grad)}


def _values(stored: dict[str, Any] | None) -> np.ndarray | None:
    if stored is None:
        return None
    return np.asarray(stored["values"], dtype=np.float64).reshape(stored["shape"])


def _output(record: dict[str, Any]) -> Output:
    try:
        loss = _values(record["loss"])
        grad = _values(record.get("grad"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"an output of {record.get('impl')!r} in outputs.jsonl is corrupt ({exc}); rerun "
                             "its audit") from None
    if loss is None:
        raise RunFolderError(f"an output of {record.get('impl')!r} in outputs.jsonl has no loss; rerun its audit")
    return Output(loss, grad, record.get("out_dtype", ""), record.get("grad_dtype"), record.get("api", ""))


def _other(candidates: list[dict[str, Any]], mine: dict[str, Any],
           fingerprints: Mapping[str, str]) -> dict[str, Any] | None:
    """The other side's output for `mine`, of the same package version (Keras 3.15.1 on both backends): from the
    same run, else the one run (of the same machine, where several) that holds it; None where none is, or the
    choice is not one."""
    candidates = [c for c in candidates if c.get("framework_version") == mine.get("framework_version")]
    for narrowed in ([c for c in candidates if c["run_id"] == mine["run_id"]],
                     [c for c in candidates if fingerprints.get(c["run_id"]) == fingerprints.get(mine["run_id"])],
                     candidates):
        if len(narrowed) == 1:
            return narrowed[0]
        if narrowed:
            return None
    return None


def _sides(cases: Sequence[Case], records: Iterable[dict[str, Any]]) -> dict[Cell, list[dict[str, Any]]]:
    """The stored outputs by cell, one per run (the last: a resumed run may have kept a cell twice), of the
    cases as they are here (the same name and bytes)."""
    index = {case.name: i for i, case in enumerate(cases)}
    digests = [case.digest() for case in cases]
    latest: dict[tuple[str, Cell], dict[str, Any]] = {}
    for record in records:
        try:
            at = index.get(record["case"])
            if at is None or record.get("case_digest", digests[at]) != digests[at]:
                continue
            cell = Cell(record["impl"], at, record["dtype"], record["device"], record["reduction"])
            latest[(str(record["run_id"]), cell)] = record
        except (KeyError, TypeError) as exc:
            raise RunFolderError(f"a record of outputs.jsonl lacks {exc}; the run folder is corrupt — rerun "
                                 "its audit") from None
    sides: dict[Cell, list[dict[str, Any]]] = {}
    for (_, cell), record in latest.items():
        sides.setdefault(cell, []).append(record)
    return sides


def across_rows(cases: Sequence[Case], adapters: Mapping[str, type[Adapter]], records: Iterable[dict[str, Any]],
                checked: set[tuple[str, ...]], fingerprints: Mapping[str, str]) -> list[ConformanceRow]:
    """The rows of the identities across frameworks that the stored outputs allow and no source checked.

    `checked` holds (run_id, impl, case, dtype, device, reduction, relation) of the relation rows the sources
    have. A row is the run's that holds its implementation's side (its run_id and framework version); the other
    side comes from the same run, else from the one run that holds it (of the same machine, where several do)."""
    sides = _sides(cases, records)
    if not sides:
        return []
    judge = Judge(cases, dict(adapters))
    dtypes, devices = sorted({c.dtype for c in sides}), sorted({c.device for c in sides})
    rows: list[ConformanceRow] = []
    for adapter in adapters.values():
        for pair in relation_pairs(adapter, cases, dtypes, devices):
            if judge.owner(pair.base.impl) != judge.owner(pair.partner.impl):
                rows += _pair_rows(judge, pair, sides, checked, fingerprints)
    return rows


def _pair_rows(judge: Judge, pair: Pair, sides: Mapping[Cell, list[dict[str, Any]]], checked: set[tuple[str, ...]],
               fingerprints: Mapping[str, str]) -> list[ConformanceRow]:
    mine, theirs = (pair.partner, pair.base) if pair.partner.impl == pair.impl else (pair.base, pair.partner)
    rows: list[ConformanceRow] = []
    for record in sides.get(mine, []):
        key = (record["run_id"], *(str(record[k]) for k in _KEY), pair.relation)
        other = _other(sides.get(theirs, []), record, fingerprints)
        if key in checked or other is None:
            continue
        for key in {judge.reference_key(cell) for cell in (mine, theirs)} - judge.references.keys():
            judge.locate_reference(key)
        judge.versions[record["framework"]] = record.get("framework_version", "")
        outputs = {mine: _output(record), theirs: _output(other)}
        note = f" (checked by merge against {theirs.impl} of run {other['run_id']})"
        rows += [replace(row, run_id=record["run_id"], error_message=row.error_message + note).with_id()
                 for row in judge.check_pair(pair, outputs[pair.base], outputs[pair.partner])]
    return rows
