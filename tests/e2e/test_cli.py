"""End to end through `python -m harness`: a small matrix, its run folder, and bad usage (exit 2, one line)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.store.schema import CONFORMANCE_COLUMNS, SCHEMA_VERSION
from tests.conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "small"
    done = run_cli("audit", "--frameworks", "numpy,torch", "--dtypes", "float32,float64", "--families",
                   "seed,large", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "rows per status" in done.stdout and str(out) in done.stdout
    return out


def test_run_folder_contents(small_run: Path) -> None:
    meta = json.loads((small_run / "meta.json").read_text())
    assert meta["complete"] is True and meta["schema_version"] == SCHEMA_VERSION
    assert meta["packages"]["torch"].startswith("2.13.0") and meta["workers"]["torch"]["devices"] == ["cpu"]
    assert set(meta["tolerance_policy"]) >= {"pass", "inexact", "fail", "nonfinite"}
    table = pd.read_parquet(small_run / "conformance.parquet")
    assert list(table.columns) == CONFORMANCE_COLUMNS
    # each framework has 2 logits-form implementations (24 rows each: seed_logits and large_logits × 2 dtypes ×
    # 3 reductions × 2 quantities) and 1 probs-form one (12 rows: seed_probs); torch.compile adds, on the cases
    # tagged "path" in float32 for the mean, 3 cells × (2 reference + 2 path rows)
    assert len(table) == 2 * (2 * 24 + 12) + 12
    compiled = table[table["mode"] == "torch.compile"]
    assert set(compiled["check"]) == {"reference", "path"} and set(compiled["status"]) == {"pass"}
    assert table["row_id"].is_unique
    assert "# BCE conformance audit" in (small_run / "report.md").read_text()


def test_seed_passes_and_known_torch_finding(small_run: Path) -> None:
    table = pd.read_parquet(small_run / "conformance.parquet")
    seed = table[table["family"] == "seed"]
    assert set(seed["status"]) == {"pass"}
    mean64 = seed[(seed["dtype"] == "float64") & (seed["reduction"] == "mean") & (seed["quantity"] == "loss")]
    assert (mean64["expected"] == 0.6219186506146224).all()
    # torch computes log(e^-m + e^(-x-m)) instead of log1p: in float32 a loss of 9.36e-14 at x = -30, y = 0
    # comes out as 0, millions of ULP off
    row = table[(table["impl"] == "torch.logits") & (table["case"] == "large_logits") & (table["dtype"] == "float32")
                & (table["reduction"] == "none") & (table["quantity"] == "loss")].iloc[0]
    assert row["status"] == "fail" and row["got"] == 0.0
    assert row["worst_y"] == 0.0 and row["worst_x"] <= -15
    assert row["expected"] == pytest.approx(9.357622968839737e-14, rel=2**-23)
    numpy_large = table[(table["impl"] == "numpy.logits") & (table["case"] == "large_logits")]
    assert set(numpy_large["status"]) == {"pass"}  # the stable formula holds at every |x|


def test_report_command_rewrites_the_reports(small_run: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(small_run, tmp_path / "copy")  # the module's run stays as the other tests read it
    (copy / "report.md").unlink()
    (copy / "report.html").write_text("stale")
    done = run_cli("report", str(copy))
    assert done.returncode == 0 and done.stdout.split() == [str(copy / "report.md"), str(copy / "report.html")]
    assert (copy / "report.md").read_text() == (small_run / "report.md").read_text().replace(str(small_run), str(copy))
    assert (copy / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_existing_output_folder_is_refused(small_run: Path) -> None:
    done = run_cli("audit", "--frameworks", "numpy", "--families", "seed", "--out", str(small_run))
    assert done.returncode == 2 and "already exists" in done.stderr
    assert (small_run / "conformance.parquet").is_file()  # nothing lost


def test_malformed_case_file_names_case_and_field(tmp_path: Path) -> None:
    file = tmp_path / "cases.json"
    file.write_text(json.dumps({"cases": [{"name": "p0", "input_form": "probs", "x": [0.0]}]}))
    done = run_cli("audit", "--frameworks", "numpy", "--cases", str(file), "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "case 'p0': missing field 'y'" in done.stderr


def test_user_case_file_end_to_end(tmp_path: Path) -> None:
    file = tmp_path / "cases.json"
    file.write_text(json.dumps({"cases": [
        {"name": "p0_y1", "input_form": "probs", "x": [0.0], "y": [1.0]},
        {"name": "big", "input_form": "logits", "x": [[1e4, "-inf"]], "y": [[1, 0]], "pos_weight": [3.0]},
        {"name": "oops", "input_form": "logits", "x": [0.5, 1.0], "y": [[1.0], [0.0]]},
    ]}))
    out = tmp_path / "run"
    done = run_cli("audit", "--frameworks", "numpy", "--dtypes", "float64", "--cases", str(file), "--out", str(out),
                   "--quiet")
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out / "conformance.parquet")
    table = table[table["impl"] != "numpy.lse_formula"].set_index(["case", "reduction", "quantity"])
    # log 0 = -inf: the exact loss is +inf and NumPy's composed formula returns it
    assert table.loc[("p0_y1", "none", "loss"), "status"] == "pass"
    assert table.loc[("p0_y1", "none", "loss"), "expected"] == float("inf")
    assert table.loc[("big", "none", "loss"), "status"] == "pass"
    assert table.loc[("oops", "none", "loss"), "status"] == "rejected"  # mismatched shapes: raising is right


def test_plain_text_without_rich(tmp_path: Path) -> None:
    """A bare GPU image may lack rich: the CLI then prints plain tables and no progress bar."""
    script = ("import sys; sys.modules['rich'] = None; from harness.cli import main; "
              f"sys.exit(main(['audit', '--frameworks', 'numpy', '--families', 'seed', '--dtypes', 'float32', "
              f"'--out', {str(tmp_path / 'run')!r}]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert done.returncode == 0, done.stderr
    assert "rows per status (implementation × dtype)" in done.stdout
    assert "numpy.logits float32" in " ".join(done.stdout.split())  # a row of the table, as plain text
    assert "totals: pass" in done.stdout and "\x1b[" not in done.stdout  # no terminal escapes
