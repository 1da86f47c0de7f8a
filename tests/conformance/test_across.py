"""Identities across two frameworks between runs: the outputs a run keeps, read back exactly, judged against the
other framework's from another run (the `backend` identity of Keras on NumPy against Keras on TensorFlow)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from cases import Case
from harness.conformance.across import across_rows, side_record
from harness.conformance.plan import Cell
from harness.conformance.rows import Judge
from implementations import Output, adapter_classes

CASE = Case("c", "user", "logits", np.array([0.0, 20.0]), np.array([1.0, 0.0]), tags=("path",))
ADAPTERS = adapter_classes()
F32 = [float(np.float32(np.log(2.0))), 20.0]  # the exact l(0, 1) = log 2 and l(20, 0) = 20 + 2.1e-9, in float32
CLIPPED = float(-np.log(np.float32(1) - np.float32(1 - 1e-7)))  # σ(20) → 1, clipped to 1 − 1e-7, then −log(1 − q)


def _record(run_id: str, impl: str, loss: list[float], grad: list[float] | None = None) -> dict[str, Any]:
    judge = Judge([CASE], ADAPTERS, run_id=run_id)
    framework = impl.split(".")[0]
    judge.versions[framework] = "3.15.1"
    output = Output(np.array(loss), None if grad is None else np.array(grad), "float32", None, "api")
    record = side_record(judge, framework, Cell(impl, 0, "float32", "cpu", "none"), output)
    return json.loads(json.dumps(record))  # as the run folder keeps it


def _rows(records: list[dict[str, Any]], checked: set[tuple[str, ...]] | None = None,
          fingerprints: dict[str, str] | None = None) -> list[Any]:
    rows = across_rows([CASE], ADAPTERS, records, checked or set(), fingerprints or {})
    return [row for row in rows if row.impl == "keras_numpy.ops_logits"]


def test_a_kept_output_reads_back_exactly() -> None:
    values = [0.1, float(np.nextafter(1.0, 2.0)), float("nan"), float("-inf")]
    record = _record("a", "keras_numpy.ops_logits", values)
    got = np.asarray(record["loss"]["values"])
    assert record["loss"]["shape"] == [4] and record["grad"] is None and record["case"] == "c"
    assert np.array_equal(got, values, equal_nan=True)


def test_the_other_runs_side_is_judged_for_the_run_of_the_implementation() -> None:
    tf = _record("tf-run", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0])
    good = _record("np-run", "keras_numpy.ops_logits", F32)
    [row] = _rows([tf, good])
    assert (row.status, row.relation, row.quantity, row.run_id, row.framework) == (
        "pass", "backend", "loss", "np-run", "keras_numpy")  # NumPy's Keras has no gradient: the loss only
    assert row.error_message.endswith("(checked by merge against keras_tensorflow.ops_logits of run tf-run)")
    [row] = _rows([tf, _record("np-run", "keras_numpy.ops_logits", [F32[0], CLIPPED])])
    assert (row.status, row.worst_index, row.got, row.expected) == ("fail", "[1]", CLIPPED, 20.0)


def test_an_identity_a_source_checked_or_an_ambiguous_side_gives_no_row() -> None:
    tf = _record("tf1", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0])
    mine = _record("np", "keras_numpy.ops_logits", F32)
    checked = {("np", "keras_numpy.ops_logits", "c", "float32", "cpu", "none", "backend")}
    assert _rows([tf, mine], checked) == []
    two = [tf, _record("tf2", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0]), mine]
    assert _rows(two) == []  # two runs of TensorFlow, neither of the same machine: which one is not ours to pick
    [row] = _rows(two, fingerprints={"np": "m1", "tf1": "m2", "tf2": "m1"})
    assert row.error_message.endswith("of run tf2)")


def test_a_cell_kept_twice_by_a_resumed_run_counts_once() -> None:
    tf = _record("tf", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0])
    mine = _record("np", "keras_numpy.ops_logits", F32)
    [row] = _rows([tf, dict(tf), mine, dict(mine)])
    assert row.status == "pass"


def test_sides_of_another_keras_version_or_other_inputs_are_not_compared() -> None:
    tf = _record("tf", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0])
    mine = _record("np", "keras_numpy.ops_logits", F32)
    assert _rows([{**tf, "framework_version": "3.14.0"}, mine]) == []
    assert _rows([{**tf, "case_digest": "0" * 16}, mine]) == []  # a case of that name, other bytes


def test_a_corrupt_output_record_is_one_line_naming_the_file() -> None:
    from harness.store.folder import RunFolderError

    tf = _record("tf", "keras_tensorflow.ops_logits", F32, [-0.5, 1.0])
    mine = _record("np", "keras_numpy.ops_logits", F32)
    with pytest.raises(RunFolderError, match=r"outputs\.jsonl"):
        _rows([tf, {**mine, "loss": {"shape": [3], "values": [1.0]}}])
    with pytest.raises(RunFolderError, match=r"outputs\.jsonl"):
        _rows([tf, {key: value for key, value in mine.items() if key != "dtype"}])


def test_a_run_of_one_backend_keeps_its_sides_of_small_cases_only() -> None:
    """Keras on NumPy alone: no pair is judged in the run (TensorFlow's side is not in it), its side is kept for
    a merge; a case past INLINE_LIMIT elements is not kept (a --full run's longest reductions)."""
    from harness.conformance.relations import relation_pairs
    from harness.store.schema import INLINE_LIMIT

    big = Case("big", "user", "logits", np.zeros(INLINE_LIMIT + 1), np.zeros(INLINE_LIMIT + 1), tags=("path",))
    cases = [CASE, big]
    numpy_keras = {"keras_numpy": ADAPTERS["keras_numpy"]}
    judge = Judge(cases, numpy_keras)
    pairs = relation_pairs(ADAPTERS["keras_numpy"], cases, ["float32"], ["cpu"])
    planned = {pair.partner for pair in pairs if pair.relation == "backend"}
    judge.pair_up(pairs, planned)
    assert judge.pairs == {}
    assert {cell.case_index for cell in judge.kept} == {0} and len(judge.kept) == len(planned) // 2
