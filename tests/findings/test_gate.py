"""The gate's own logic on a table: which gated rows an expected-findings file lists, and which entries are stale
(the CLI's exit codes and messages are in e2e/test_gate.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cases import BadInput
from harness.findings import build_findings
from harness.findings.gate import apply_gate, load_expected, parse_fail_on
from tests.reports.runs import rows

TABLE = pd.DataFrame(rows())


def _expected(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "expected.toml"
    file.write_text(text, encoding="utf-8")
    return file


def test_listed_rows_pass_the_gate_and_stale_entries_are_named(tmp_path: Path) -> None:
    expected = load_expected(_expected(tmp_path, '[[finding]]\nimpl = "torch.*"\nstatus = "fail"\nreason = "log1p"\n'
                                                 '[[finding]]\ncase = "gone"\nreason = "fixed upstream"\n'))
    result = apply_gate(TABLE, parse_fail_on(["fail", "nonfinite"]), expected)
    assert result.gated == 2 and result.failed
    assert list(result.unexpected["status"]) == ["nonfinite"]  # the fail is listed, the nonfinite is not
    assert [entry.describe() for entry in result.stale] == ["case=gone"]
    assert not apply_gate(TABLE, ("deviation",), []).unexpected.empty
    assert not apply_gate(TABLE, ("timeout",), []).failed


@pytest.mark.parametrize(("text", "fragment"), [
    ("[[finding]]\nimpl = 'x'\n", "missing field 'reason'"),
    ("[[finding]]\nframework = 'x'\nreason = 'y'\n", "unknown field 'framework'"),
    ("[[finding]]\nreason = 'y'\n", "give at least one field to match"),
    ("[other]\n", "unknown table 'other'"),
    ("[[finding]\n", "is not valid TOML"),
])
def test_a_malformed_file_names_the_entry_and_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        load_expected(_expected(tmp_path, text))


def test_statuses_to_fail_on_are_checked() -> None:
    assert parse_fail_on([" fail", "fail", "nonfinite"]) == ("fail", "nonfinite")
    with pytest.raises(BadInput, match="unknown status 'failed'"):
        parse_fail_on(["failed"])


def test_entries_match_findings_by_their_fields(tmp_path: Path) -> None:
    """A finding's id (or kind, region, failure) lists every row of that finding, whatever its implementation
    or dtype; row fields beside it narrow it down."""
    findings, _ = build_findings(TABLE, {})
    fail = findings[findings["status"] == "fail"].iloc[0]
    expected = load_expected(_expected(tmp_path, f'[[finding]]\nfinding_id = "{fail["finding_id"]}"\n'
                                                 'reason = "cancellation"\n'
                                                 '[[finding]]\nkind = "nonfinite"\nimpl = "torch.*"\n'
                                                 'reason = "not this implementation"\n'))
    result = apply_gate(TABLE, ("fail", "nonfinite"), expected, findings)
    assert list(result.unexpected["status"]) == ["nonfinite"]  # the fail's finding is listed
    assert [entry.describe() for entry in result.stale] == ["impl=torch.*, kind=nonfinite"]
    everything = load_expected(_expected(tmp_path, '[[finding]]\nregion = "*"\nreason = "all known"\n'))
    assert not apply_gate(TABLE, ("fail", "nonfinite"), everything, findings).failed
    assert apply_gate(TABLE, ("fail", "nonfinite"), everything, None).failed  # no findings: nothing listed
