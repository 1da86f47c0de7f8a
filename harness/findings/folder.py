"""Findings of a run folder: built from its rows and cases, written beside them (`findings.parquet`,
`findings.json`), and read back."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cases import Case
from harness.findings.grouping import build_findings
from harness.findings.known import load_known_issues
from harness.store.folder import RunStore

__all__ = ["read_findings", "record_findings"]


def record_findings(run_dir: str | Path, conformance: pd.DataFrame | None = None,
                    cases: Mapping[str, Case] | None = None) -> pd.DataFrame:
    """Build the findings of the audit in `run_dir` (its table and cases, unless given), write them into the
    folder, note the stale known issues in meta.json, and return them."""
    store = RunStore(run_dir)
    meta = store.read_meta()
    table = store.conformance() if conformance is None else conformance
    conventions = {str(c["id"]): str(c["reason"]) for c in meta.get("conventions", [])}
    if cases is None:  # without cases.json (a folder put together by hand) findings lack weights and case words
        cases = store.read_cases() if store.has_cases() else {}
    frame, stale = build_findings(table, cases, load_known_issues(), conventions, str(store.path))
    store.write_findings(frame)
    store.update_meta(findings=len(frame), stale_known_issues=stale)
    return frame


def read_findings(run_dir: str | Path) -> pd.DataFrame:
    """The findings of a run folder, one row per finding in rank order (built and written first if the folder
    has rows but no findings yet: a run of an older version)."""
    store = RunStore(run_dir)
    store.read_meta()
    return store.findings() if store.has_findings() else record_findings(run_dir)
