"""Reading run folders: what is there, and one clear error for what is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.store.folder import RunStore
from reports import RunReadError, load_run
from tests.reports.runs import audit_folder


def test_a_run_is_read_with_its_tables(tmp_path: Path) -> None:
    run = load_run(audit_folder(tmp_path / "a"))
    assert run.meta["run_id"] == "run-a" and run.bench is None
    assert run.conformance is not None and len(run.conformance) == 5
    assert load_run(run) is run


def test_a_folder_without_results_is_refused(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "empty", {"run_id": "x"})
    with pytest.raises(RunReadError, match=r"has neither conformance\.parquet nor bench\.parquet"):
        load_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    audit = audit_folder(tmp_path / "bad" / "run")
    (audit / "conformance.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunReadError, match="is corrupt"):
        load_run(audit)
