"""Findings of a run folder: built from its rows and cases, written beside them (`findings.parquet`,
`findings.json`), and read back."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cases import Case
from harness.findings.grouping import build_findings
from harness.findings.known import load_known_issues
from harness.store.folder import RunStore

__all__ = ["read_findings", "record_findings"]


def _built(store: RunStore, conformance: pd.DataFrame | None,
           cases: Mapping[str, Case] | None) -> tuple[pd.DataFrame, list[str]]:
    """The findings of the audit in the folder (its table and cases, unless given) and the stale known issues;
    a fuzz run's onsets (meta.json's `fuzz.onsets`) go into their findings."""
    meta = store.read_meta()
    onsets = meta.get("fuzz", {}).get("onsets", {})
    table = store.conformance() if conformance is None else conformance
    conventions = {str(c["id"]): str(c["reason"]) for c in meta.get("conventions", [])}
    if cases is None:  # without cases.json (a folder put together by hand) findings lack weights and case words
        cases = store.read_cases() if store.has_cases() else {}
    return build_findings(table, cases, load_known_issues(), conventions, str(store.path), onsets)


def record_findings(run_dir: str | Path, conformance: pd.DataFrame | None = None,
                    cases: Mapping[str, Case] | None = None) -> pd.DataFrame:
    """Build the findings of the audit in `run_dir`, write them into the folder, note in meta.json how many, the
    stale known issues and (in a profile, when the run has one) the seconds it took, and return them."""
    began = time.perf_counter()
    store = RunStore(run_dir)
    frame, stale = _built(store, conformance, cases)
    store.write_findings(frame)
    meta = store.read_meta()
    if "profile" in meta:
        meta["profile"].setdefault("main", {})["findings_s"] = round(time.perf_counter() - began, 2)
    store.write_meta({**meta, "findings": len(frame), "stale_known_issues": stale})
    return frame


def read_findings(run_dir: str | Path) -> pd.DataFrame:
    """The findings of a run folder, one row per finding in rank order (for a run of an older version, which has
    rows but no findings, built from its rows without writing anything: `report` writes them)."""
    store = RunStore(run_dir)
    store.read_meta()
    return store.findings() if store.has_findings() else _built(store, None, None)[0]
