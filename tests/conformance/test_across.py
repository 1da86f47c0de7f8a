"""Identities across two frameworks between runs: the outputs a run keeps, read back exactly, judged against the
other framework's from another run (the `backend` identity of Keras on NumPy against Keras on TensorFlow)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

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


def _rows(records: list[dict[str, Any]], checked: set[tuple[str, ...]] = frozenset(),  # type: ignore[assignment]
          fingerprints: dict[str, str] | None = None) -> list[Any]:
    rows = across_rows([CASE], ADAPTERS, records, set(checked), fingerprints or {})
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
