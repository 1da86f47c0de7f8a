"""Reproducers from a real audit: every kind of discrepancy gives a standalone script that reproduces it (exit 0),
the same script exits 1 once the framework gives the right answer, and large inputs are regenerated from their
recipe and checked against the audit's bytes."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness
from cases import builtin_cases
from cases.dtypes import ulp_in_format
from harness.findings.repro import ReproError, _inputs_block, reproducer
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repro") / "run"
    wanted = {"prob_edges_float32", "logit_thresholds_bfloat16", "large_logits", "labels_outside_probs",
              "scale_logits_n1000", "relation_logits", "relation_logits~mirror"}
    cases = [c for c in builtin_cases() if c.name in wanted]
    harness.audit(frameworks=["numpy", "torch", "jax"], dtypes=["float32", "bfloat16"], cases=cases, out=out)
    return out


def _run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=script.parent, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=False)


@pytest.mark.slow
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
        done = _run(script)
        verdict = [line for line in done.stdout.splitlines() if "reproduced" in line]
        assert done.returncode == 0, (row.to_dict(), done.stdout[-2000:], done.stderr[-2000:])
        assert len(verdict) == 1 and verdict[0].startswith("reproduced:"), done.stdout


@pytest.mark.slow
def test_identities_further_derivatives_and_path_status_reproduce(run_dir: Path, tmp_path: Path) -> None:
    """A broken identity (both sides run again), a wrong second derivative and a compiled path that computes
    where eager raises (pytorch#193757): each script exits 0 and says so."""
    table = pd.read_parquet(run_dir / "conformance.parquet")
    alarms = table[table["status"].isin(["fail", "nonfinite"])]
    picks = [alarms[alarms["check"] == "relation"].iloc[0], alarms[alarms["quantity"] == "grad2"].iloc[0],
             alarms[alarms["error_type"] == "PathStatus"].iloc[0]]
    for row in picks:
        script = tmp_path / f"repro_{row['row_id']}.py"
        script.write_text(reproducer(run_dir, row["row_id"]), encoding="utf-8")
        done = _run(script)
        assert done.returncode == 0, (row.to_dict(), done.stdout[-2000:], done.stderr[-2000:])
        assert "reproduced:" in done.stdout and "NOT reproduced" not in done.stdout, done.stdout


@pytest.mark.slow
def test_the_script_exits_1_once_the_framework_is_right(run_dir: Path, tmp_path: Path) -> None:
    """The same reproducer, told that the framework's own output is the exact value, says the problem is gone."""
    table = pd.read_parquet(run_dir / "conformance.parquet")
    row = table[(table["impl"] == "torch.logits") & (table["case"] == "large_logits") & (table["check"] == "reference")
                & (table["status"] == "fail") & (table["reduction"] == "none") & (table["quantity"] == "loss")].iloc[0]
    script = tmp_path / "repro.py"
    text = reproducer(run_dir, row["row_id"])
    script.write_text(text, encoding="utf-8")
    assert _run(script).returncode == 0
    fixed, count = re.subn(r"'expected': [^,]+,", f"'expected': {float(row['got'])!r},", text)
    assert count == 1
    script.write_text(fixed, encoding="utf-8")
    done = _run(script)
    assert done.returncode == 1, done.stdout
    assert "NOT reproduced: the framework now gives the right answer" in done.stdout


def test_large_inputs_are_regenerated_from_their_recipe_and_checked() -> None:
    case = next(c for c in builtin_cases(families=["scale"]) if c.size == 100_000 and c.input_form == "logits")
    block = _inputs_block(case, "bfloat16")
    assert "x = np.array(" not in block and "default_rng" in block  # the recipe, not 100 000 literals
    namespace: dict[str, object] = {"np": np, "hashlib": hashlib, "ulp_in_format": ulp_in_format}  # the script's
    exec(block, namespace)
    inputs = case.inputs("bfloat16")
    np.testing.assert_array_equal(namespace["x"], inputs.x.astype(np.float64))
    np.testing.assert_array_equal(namespace["y"], inputs.y.astype(np.float64))
    tampered = block.replace("* 2.0", "* 2.5")
    assert tampered != block
    with pytest.raises(AssertionError, match="regenerated inputs differ from the audit"):
        exec(tampered, {"np": np, "hashlib": hashlib, "ulp_in_format": ulp_in_format})


@pytest.mark.slow
def test_pass_rows_have_nothing_to_reproduce(run_dir: Path) -> None:
    table = pd.read_parquet(run_dir / "conformance.parquet")
    passing = table[table["status"] == "pass"].iloc[0]
    with pytest.raises(ReproError, match="nothing to reproduce"):
        reproducer(run_dir, passing["row_id"])
    done = run_cli("repro", str(run_dir), passing["row_id"])
    assert done.returncode == 2 and "nothing to reproduce" in done.stderr
    missing = run_cli("repro", str(run_dir), "0000000000000000")
    assert missing.returncode == 2 and "no row '0000000000000000'" in missing.stderr


@pytest.mark.slow
def test_the_top_findings_reproduce_from_their_minimal_example(run_dir: Path, tmp_path: Path) -> None:
    findings = harness.findings(run_dir)
    assert len(findings) >= 5 and (findings.head(5)["status"] != "deviation").all()
    for finding in findings.head(5).itertuples(index=False):
        script = tmp_path / f"finding_{finding.finding_id}.py"
        script.write_text(reproducer(run_dir, finding.finding_id), encoding="utf-8")
        done = _run(script)
        assert done.returncode == 0, (finding.title, done.stdout[-2000:], done.stderr[-2000:])
        verdict = [line for line in done.stdout.splitlines() if "reproduced" in line]
        assert len(verdict) == 1 and verdict[0].startswith("reproduced:"), done.stdout


@pytest.mark.slow
def test_a_finding_script_exits_non_zero_once_the_framework_is_right(run_dir: Path, tmp_path: Path) -> None:
    findings = harness.findings(run_dir)
    finding = findings[(findings["minimal"] == "element") & (findings["status"] == "fail")].iloc[0]
    text = reproducer(run_dir, finding["finding_id"])
    assert f"finding {finding['finding_id']}" in text and "'worst': [0]" in text  # one element
    fixed, count = re.subn(r"'expected': [^,]+,", f"'expected': {float(finding['got'])!r},", text)
    assert count == 1
    script = tmp_path / "fixed.py"
    script.write_text(fixed, encoding="utf-8")
    done = _run(script)
    assert done.returncode == 1 and "NOT reproduced" in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["pytorch", "jax", "numpy"])
def test_issue_prints_a_complete_bug_report(run_dir: Path, tracker: str) -> None:
    findings = harness.findings(run_dir)
    framework = {"pytorch": "torch", "jax": "jax", "numpy": "numpy"}[tracker]
    finding = next(f for f in findings.itertuples(index=False) if framework in f.frameworks)
    done = run_cli("issue", str(run_dir), finding.finding_id, "--tracker", tracker)
    assert done.returncode == 0, done.stderr
    report = done.stdout
    for part in ("Title: ", "exact", "Where else it holds:", "Related known issues:", "def run(x, y, weight",
                 f"finding {finding.finding_id}"):
        assert part in report, part
    assert {"pytorch": "### Versions", "jax": "### System info", "numpy": "### Python and NumPy Versions"}[tracker] \
        in report
    missing = run_cli("issue", str(run_dir), "000000000000")
    assert missing.returncode == 2 and "no finding '000000000000'" in missing.stderr
