"""Merging run folders: every row once with its own run id, the sources and their machines in meta.json, and
whether the shards make a whole (the CLI runs of real shards are in e2e/test_scaleout.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.scale.merge import merge_runs
from harness.store.folder import RunFolderError
from tests.reports.runs import audit_folder


def test_shards_merge_into_one_complete_run(tmp_path: Path) -> None:
    first = audit_folder(tmp_path / "s1", run_id="r1", shard="1/2", unsharded_case_digest="d")
    second = audit_folder(tmp_path / "s2", run_id="r2", shard="2/2", unsharded_case_digest="d", version="2.14.0")
    merged = merge_runs([first, second], tmp_path / "merged", "m")
    table = pd.read_parquet(merged / "conformance.parquet")
    assert len(table) == 10 and list(table["run_id"].unique()) == ["r1", "r2"]
    meta = json.loads((merged / "meta.json").read_text())
    assert (meta["kind"], meta["shards"], meta["complete"], meta["fingerprint"]) == ("merged", "complete", True, "f1")
    assert [source["shard"] for source in meta["sources"]] == ["1/2", "2/2"]


def test_the_merged_run_keeps_every_shards_own_functions(tmp_path: Path) -> None:
    first = audit_folder(tmp_path / "s1", run_id="r1", callables=["mine:bce:logits:torch"])
    second = audit_folder(tmp_path / "s2", run_id="r2", callables=["mine:bce:logits:torch", "theirs:f:probs:jax"])
    meta = json.loads((merge_runs([first, second], tmp_path / "m", "m") / "meta.json").read_text())
    assert meta["callables"] == ["mine:bce:logits:torch", "theirs:f:probs:jax"]  # so that repro finds them


def test_what_is_missing_or_mixed_is_recorded(tmp_path: Path) -> None:
    first = audit_folder(tmp_path / "s1", run_id="r1", shard="1/3")
    other = audit_folder(tmp_path / "x", run_id="r3")
    meta = json.loads((merge_runs([first, audit_folder(tmp_path / "s3", run_id="r2", shard="3/3")],
                                  tmp_path / "m1", "m1") / "meta.json").read_text())
    assert meta["shards"] == "missing 2/3"
    meta = json.loads((merge_runs([first, other], tmp_path / "m2", "m2") / "meta.json").read_text())
    assert meta["shards"].startswith("mixed")


def test_bad_merges_are_refused_and_touch_nothing(tmp_path: Path) -> None:
    first = audit_folder(tmp_path / "s1", run_id="r1")
    with pytest.raises(RunFolderError, match="two or more run folders"):
        merge_runs([first], tmp_path / "out", "m")
    with pytest.raises(RunFolderError, match="given twice"):
        merge_runs([first, first], tmp_path / "out", "m")
    assert not (tmp_path / "out").exists()


def test_findings_are_recomputed_over_the_merged_rows(tmp_path: Path) -> None:
    """A finding is the same one in every shard that shows it: the merged run holds it once, with every row."""
    first = audit_folder(tmp_path / "s1", run_id="r1", shard="1/2", unsharded_case_digest="d")
    second = audit_folder(tmp_path / "s2", run_id="r2", shard="2/2", unsharded_case_digest="d", version="2.14.0")
    merged = merge_runs([first, second], tmp_path / "merged", "m")
    findings = pd.read_parquet(merged / "findings.parquet")
    assert len(findings) == 3 and list(findings["rows"]) == [1, 1, 1]  # each row id is in both shards: once
    assert json.loads((merged / "meta.json").read_text())["findings"] == 3
