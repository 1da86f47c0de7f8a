"""Reproducers: every kind of discrepancy produces a standalone script that runs and reproduces it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import harness
from cases import builtin_cases
from harness.findings.repro import ReproError, reproducer
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repro") / "run"
    wanted = {"prob_edges_float32", "logit_thresholds_bfloat16", "large_logits", "labels_outside_probs",
              "scale_logits_n1000"}
    cases = [c for c in builtin_cases() if c.name in wanted]
    harness.audit(frameworks=["numpy", "torch", "jax"], dtypes=["float32", "bfloat16"], cases=cases, out=out)
    return out


def test_every_kind_of_discrepancy_reproduces(run_dir: Path, tmp_path: Path) -> None:
    table = pd.read_parquet(run_dir / "conformance.parquet")
    found = table[~table["status"].isin(["pass", "unsupported", "unavailable"])]
    picks = found.groupby(["framework", "check", "status"]).head(1)
    assert len(picks) >= 8
    assert {"fail", "nonfinite", "deviation", "rejected"} <= set(picks["status"])
    for _, row in picks.iterrows():
        script = tmp_path / f"repro_{row['row_id']}.py"
        script.write_text(reproducer(run_dir, row["row_id"]), encoding="utf-8")
        assert f"import {row['framework']}" in script.read_text() or row["framework"] == "numpy"
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=False)
        assert done.returncode == 0, (row.to_dict(), done.stdout[-2000:], done.stderr[-2000:])
        assert "reproduced" in done.stdout or "raised" in done.stdout


def test_large_inputs_are_regenerated_and_checked(run_dir: Path) -> None:
    table = pd.read_parquet(run_dir / "conformance.parquet")
    row = table[(table["case"] == "scale_logits_n1000") & (table["impl"] == "torch.logits")].iloc[0]
    script = reproducer(run_dir, row["row_id"]) if row["status"] != "pass" else ""
    if script:  # 1000 elements are stored inline; the recipe path is taken above INLINE_LIMIT
        assert "x = np.array(" in script


def test_pass_rows_have_nothing_to_reproduce(run_dir: Path) -> None:
    table = pd.read_parquet(run_dir / "conformance.parquet")
    passing = table[table["status"] == "pass"].iloc[0]
    with pytest.raises(ReproError, match="nothing to reproduce"):
        reproducer(run_dir, passing["row_id"])
    done = run_cli("repro", str(run_dir), passing["row_id"])
    assert done.returncode == 2 and "nothing to reproduce" in done.stderr
    missing = run_cli("repro", str(run_dir), "0000000000000000")
    assert missing.returncode == 2 and "no row '0000000000000000'" in missing.stderr
