"""report.md: the summary for a pull request, from the stored run alone."""

from __future__ import annotations

from pathlib import Path

from reports import load_run, render_markdown, write_markdown
from tests.reports.runs import audit_folder


def test_the_report_leads_with_status_then_discrepancies_with_reproducers(tmp_path: Path) -> None:
    folder = audit_folder(tmp_path / "a")
    text = render_markdown(load_run(folder))
    assert text.startswith("# BCE conformance audit run-a\n")
    assert text.index("## Status by implementation and dtype") < text.index("## Discrepancies")
    lines = [line for line in text.splitlines() if line.startswith("| nonfinite") or line.startswith("| fail")]
    assert len(lines) == 2 and lines[0].startswith("| nonfinite")  # worst first
    assert f"`python -m harness repro {folder} " in lines[1] and "| 1.5e+07 |" in lines[1]
    assert "- `pass`: forward error ≤ 4 ULP" in text  # the tolerance policy, from meta
    assert write_markdown(folder).read_text() == text
