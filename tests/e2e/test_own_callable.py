"""`audit --callable module:function`: your own BCE in its own worker, its rows beside the frameworks', its
findings reproducible by `repro`, and kept by `--resume`; a bad spec is a usage error."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import pytest

from tests.conftest import assert_usage_error, run_cli

MODULE = '''import torch


def torch_bce(x, y, reduction="none", weight=None):
    """On paper: −(y·log σ(x) + (1 − y)·log(1 − σ(x))), reduced as torch reduces."""
    s = torch.sigmoid(x)
    loss = -(y * torch.log(s) + (1 - y) * torch.log(1 - s))
    if weight is not None:
        loss = loss * weight
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
'''


NUMPY_MODULE = '''import numpy as np


def np_bce(x, y):
    s = 1 / (1 + np.exp(-x))
    return -(y * np.log(s) + (1 - y) * np.log(1 - s))
'''


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("own")
    (root / "mylosses.py").write_text(MODULE)
    (root / "numpylosses.py").write_text(NUMPY_MODULE)
    run = root / "run"
    done = run_cli("audit", "--frameworks", "numpy", "--callable", "mylosses:torch_bce", "--callable",
                   "numpylosses:np_bce", "--families", "large,weights,relations", "--dtypes", "float32", "--quiet",
                   "--out", str(run), extra_path=str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    return run, str(root)


def test_its_rows_stand_beside_the_frameworks(own_run: tuple[Path, str]) -> None:
    run, _ = own_run
    table = pd.read_parquet(run / "conformance.parquet")
    assert set(table["framework"]) == {"numpy", "torch_bce", "np_bce"}
    own = table[table["framework"] == "torch_bce"]
    assert set(own["impl"]) == {"torch_bce.logits"} and set(own["reduction"]) == {"none", "mean", "sum"}
    assert set(own["quantity"]) >= {"loss", "grad"}
    row = own[(own["case"] == "large_logits") & (own["reduction"] == "none") & (own["quantity"] == "loss")].iloc[0]
    assert row["status"] == "nonfinite" and row["api"].startswith("mylosses:torch_bce(x, y) (your own, on torch")
    unweighted = own[own["case"].str.startswith("pos_weight") & (own["quantity"] == "loss")]
    assert set(unweighted["status"]) == {"unsupported"}
    assert set(unweighted["error_message"]) == {"torch_bce takes no pos_weight"}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["callables"] == ["mylosses:torch_bce:logits:torch", "numpylosses:np_bce:logits:numpy"]
    assert meta["frameworks"] == ["numpy", "torch_bce", "np_bce"]
    assert meta["workers"]["torch_bce"]["versions"]["torch_bce"].startswith(version("torch") + "+src.")


def test_a_numpy_function_is_judged_on_its_loss_and_its_identities(own_run: tuple[Path, str]) -> None:
    run, _ = own_run
    table = pd.read_parquet(run / "conformance.parquet")
    own = table[table["framework"] == "np_bce"]
    assert set(own["reduction"]) == {"none"}  # per element
    assert set(own.loc[own["quantity"] == "grad", "status"]) == {"unsupported"}  # NumPy has no autodiff
    relations = own[own["check"] == "relation"]
    assert len(relations) > 0 and set(relations["quantity"]) == {"loss"}
    assert "error" not in set(own["status"])


def test_resume_runs_your_function_again(own_run: tuple[Path, str], tmp_path: Path) -> None:
    run, root = own_run
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    (cut / "conformance.parquet").unlink()
    meta = json.loads((cut / "meta.json").read_text())
    (cut / "meta.json").write_text(json.dumps(dict(meta, complete=False)))
    records = [json.loads(line) for line in (cut / "journal.jsonl").read_text().splitlines()]
    kept = [record for record in records if record["rows"][0]["framework"] == "numpy"]
    (cut / "journal.jsonl").write_text("".join(json.dumps(record) + "\n" for record in kept))
    done = run_cli("audit", "--resume", str(cut), "--quiet", extra_path=root)
    assert done.returncode == 0, done.stderr[-3000:]
    before = pd.read_parquet(run / "conformance.parquet").set_index("row_id")
    after = pd.read_parquet(cut / "conformance.parquet").set_index("row_id")
    assert sorted(after.index) == sorted(before.index)
    assert (after.loc[before.index, "status"] == before["status"]).all()


def test_its_findings_reproduce_from_the_run_folder(own_run: tuple[Path, str]) -> None:
    run, root = own_run
    findings = pd.read_parquet(run / "findings.parquet")
    own = findings[findings["impls"].map(lambda impls: list(impls) == ["torch_bce.logits"])
                   & findings["quantities"].map(lambda quantities: list(quantities) == ["grad"])
                   & (findings["x"] > 10) & (findings["y"] == 0.0)]
    assert len(own) >= 1, findings[["title", "impls", "quantities", "x"]].to_string()
    finding = own.iloc[0]
    assert finding["status"] == "nonfinite" and math.isnan(finding["got"])
    sigma = 1 / (1 + mpmath.exp(-finding["x"]))  # dl/dx = σ(x) − y, with y = 0
    assert finding["expected"] == float(np.float32(float(sigma)))
    script = run_cli("repro", str(run), str(finding["finding_id"]), "--out", str(run / "repro.py"),
                     extra_path=root)
    assert script.returncode == 0, script.stderr
    assert "from mylosses import torch_bce" in (run / "repro.py").read_text()
    ran = subprocess.run([sys.executable, str(run / "repro.py")], capture_output=True, text=True, cwd=root,
                         env={"PYTHONPATH": root, "PATH": ""}, timeout=300, check=False)
    assert "reproduced" in ran.stdout and "got       nan" in ran.stdout, ran.stdout + ran.stderr
    issue = run_cli("issue", str(run), str(finding["finding_id"]), extra_path=root)
    assert_usage_error(issue, "which has no upstream tracker here (your own function")


def test_a_bad_callable_is_a_usage_error(tmp_path: Path) -> None:
    assert_usage_error(run_cli("audit", "--callable", "no_such_module_here:f", "--out", str(tmp_path / "r")),
                       "no module 'no_such_module_here' on the path")
    assert_usage_error(run_cli("audit", "--callable", "json", "--out", str(tmp_path / "r")),
                       "give module:function[:form[:framework]]")
    assert not (tmp_path / "r").exists()
