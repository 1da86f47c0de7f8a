"""History: every run under a folder once, merged runs whose sources are there counted by their sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import RunReadError
from reports.history import load_history, write_history
from tests.reports.runs import audit_folder


def test_every_run_is_read_once_and_bad_folders_are_listed(tmp_path: Path) -> None:
    audit_folder(tmp_path / "a", run_id="run-a")
    audit_folder(tmp_path / "nested" / "b", run_id="run-b", version="2.14.0")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "meta.json").write_text("{")
    history = load_history(tmp_path)
    assert set(history["run_id"]) == {"run-a", "run-b"} and set(history["kind"]) == {"accuracy", "findings"}
    mine = history[(history["impl"] == "torch.logits") & (history["run_id"] == "run-b")]
    torch = mine[mine["kind"] == "accuracy"].iloc[0]
    assert (torch["rows"], torch["passed"], torch["alarm_rows"], torch["framework_version"]) == (2, 1, 1, "2.14.0")
    counted = mine[mine["kind"] == "findings"].iloc[0]  # a run without findings: its alarm rows stand in
    assert counted["alarm_rows"] == 1 and counted["findings"] != counted["findings"]
    assert len(history.attrs["skipped"]) == 1 and "corrupt" in history.attrs["skipped"][0]
    markdown, page = write_history(tmp_path, history)
    assert "# bce-harness history: 2 runs" in markdown.read_text() and page.name == "history.html"
    with pytest.raises(RunReadError, match="is not a folder of runs"):
        load_history(tmp_path / "nowhere")


def test_history_counts_distinct_findings_per_implementation(tmp_path: Path) -> None:
    """A run with findings: each implementation's distinct findings (a finding in two dtypes counts once)."""
    from harness.findings import record_findings

    folder = audit_folder(tmp_path / "a", run_id="run-a")
    record_findings(folder)
    history = load_history(tmp_path)
    counted = history[history["kind"] == "findings"].set_index("impl")
    assert counted.loc["torch.logits", "findings"] == 1 and counted.loc["numpy.logits", "findings"] == 1
    assert counted.loc["torch.probs", "findings"] == 1  # its documented convention
    assert "| torch.logits 2.13.0 | 1 |" in write_history(tmp_path, history)[0].read_text()
