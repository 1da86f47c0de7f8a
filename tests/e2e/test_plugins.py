"""A third-party entry point whose import raises: a warning, `unavailable` rows with the reason, and `list`,
`audit` and `bench` still work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def broken_plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("broken-plugin")
    (root / "broken_bce_plugin.py").write_text("raise ImportError('this plugin needs libfoo.so')\n")
    info = root / "broken_bce_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-bce-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bce_harness.implementations]\nbroken = broken_bce_plugin:Adapter\n")
    return str(root)


def _warned(stderr: str) -> bool:
    return "RuntimeWarning: bce-harness: adapter 'broken' (broken_bce_plugin:Adapter) failed to load: ImportError: " \
           "this plugin needs libfoo.so; its rows are unavailable" in stderr


def test_list_still_works_and_says_why(broken_plugin: str) -> None:
    done = run_cli("list", "--json", extra_path=broken_plugin)
    assert done.returncode == 0 and _warned(done.stderr), done.stderr
    listing = json.loads(done.stdout)["frameworks"]
    assert listing["numpy"]["devices"] == ["cpu"]
    assert not listing["broken"]["installed"]
    assert listing["broken"]["problem"].startswith("its adapter broken_bce_plugin:Adapter failed to load (ImportError")


def test_audit_gives_unavailable_rows_with_the_reason(broken_plugin: str, tmp_path: Path) -> None:
    done = run_cli("audit", "--families", "seed", "--dtypes", "float32", "--quiet", "--out", str(tmp_path / "run"),
                   extra_path=broken_plugin)
    assert done.returncode == 0 and _warned(done.stderr), done.stderr
    table = pd.read_parquet(tmp_path / "run" / "conformance.parquet")
    broken = table[table["framework"] == "broken"]
    assert set(broken["impl"]) == {"broken.logits", "broken.probs"} and set(broken["status"]) == {"unavailable"}
    assert broken["error_message"].str.contains("failed to load (ImportError: this plugin needs libfoo.so)",
                                                regex=False).all()
    assert set(table.loc[table["framework"] == "numpy", "status"]) == {"pass"}
    named = run_cli("audit", "--frameworks", "broken", extra_path=broken_plugin)
    assert named.returncode == 2 and "framework 'broken': its adapter broken_bce_plugin:Adapter failed to load" in (
        named.stderr)


def test_bench_still_works(broken_plugin: str, tmp_path: Path) -> None:
    done = run_cli("bench", "--frameworks", "numpy", "--sizes", "100", "--sweeps", "2", "--threads", "1",
                   "--quiet", "--out", str(tmp_path / "bench"), extra_path=broken_plugin)
    assert done.returncode == 0 and _warned(done.stderr), done.stderr
    assert len(pd.read_parquet(tmp_path / "bench" / "bench.parquet")) == 2
