"""Run folders: never overwritten, a journal that survives a cut, tables last-row-wins, the schema version checked,
and cases stored by value or by recipe and regenerated to the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cases import Case, builtin_cases
from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import CASES, JOURNAL, SCHEMA_VERSION, ConformanceRow


def _store(tmp_path: Path) -> RunStore:
    return RunStore.create(tmp_path / "run", {"run_id": "r1", "kind": "audit"})


def test_a_folder_is_created_once_and_never_overwritten(tmp_path: Path) -> None:
    store = _store(tmp_path)
    meta = store.read_meta()
    assert meta["complete"] is False and meta["schema_version"] == SCHEMA_VERSION
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        RunStore.create(store.path, {"run_id": "r2"})
    assert store.read_meta()["run_id"] == "r1"


def test_a_folder_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.update_meta(schema_version=99)
    with pytest.raises(RunFolderError, match="schema version 99; this version reads 1"):
        store.read_meta()


def test_the_journal_drops_a_cut_line_and_the_table_keeps_the_last_row(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = ConformanceRow(impl="a", case="c", quantity="loss", status="fail").with_id()
    store.append([first.record()])
    store.append([ConformanceRow(impl="a", case="c", quantity="loss", status="pass").with_id().record()])
    with open(store.path / JOURNAL, "a", encoding="utf-8") as journal:
        journal.write('{"rows": [{"row_id": "cut sh')  # killed in the middle of a write
    assert len(store.journal_rows()) == 2
    table = store.consolidate()
    assert list(table["status"]) == ["pass"] and table["row_id"].iloc[0] == first.row_id
    assert store.conformance()["status"].tolist() == ["pass"]


def test_cases_are_stored_exactly_and_large_ones_by_recipe(tmp_path: Path) -> None:
    store = _store(tmp_path)
    small = Case("tiny", "user", "logits", np.array([2.0**-149, -np.inf, np.nan]), np.array([1.0, 0.0, 0.5]))
    large = next(c for c in builtin_cases(3, ["scale"]) if c.size == 100_000)
    store.write_cases([small, large], seed=3)
    stored = json.loads((store.path / CASES).read_text())
    assert [entry["name"] for entry in stored["generated"]] == [large.name]  # by recipe, not 100 000 values
    read = store.read_cases()
    assert read["tiny"].digest() == small.digest() and read[large.name].digest() == large.digest()
    np.testing.assert_array_equal(read[large.name].x, large.x)
    stored["generated"][0]["digest"] = "0" * 64
    (store.path / CASES).write_text(json.dumps(stored))
    with pytest.raises(RunFolderError, match="no longer regenerates to the same bytes"):
        store.read_cases()


def test_a_corrupt_meta_is_one_clear_error(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store.path / "meta.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="is corrupt \\(not JSON\\)"):
        store.read_meta()
    with pytest.raises(RunFolderError, match="is not a run folder"):
        RunStore(tmp_path / "nowhere").read_meta()
