"""Scale-out: `--shard i/n` splits, `merge` joins (shards, machines, framework versions), `history` reads them all,
and the machine fingerprint that tells machines apart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.store.environment import collect_environment
from reports.history import load_history, write_history
from tests.conftest import assert_usage_error, run_cli

AUDIT = ("audit", "--frameworks", "numpy", "--dtypes", "float32", "--families", "seed,large,labels", "--quiet")


@pytest.mark.parametrize(("text", "fragment"), [("3/2", "between 1 and n"), ("0/4", "between 1 and n"),
                                                ("a/b", "write it as i/n"), ("2", "write it as i/n")])
def test_bad_shards_are_bad_usage(text: str, fragment: str) -> None:
    done = run_cli(*AUDIT, "--shard", text)
    assert done.returncode == 2 and fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaleout")
    for name, extra in (("whole", ()), ("s1", ("--shard", "1/2")), ("s2", ("--shard", "2/2"))):
        done = run_cli(*AUDIT, "--out", str(root / name), *extra)
        assert done.returncode == 0, done.stderr
    done = run_cli("merge", str(root / "s1"), str(root / "s2"), "--out", str(root / "merged"))
    assert done.returncode == 0, done.stderr
    return root


def test_merged_shards_equal_the_whole_run(shards: Path) -> None:
    key = ["row_id", "status", "max_ulp_error", "got", "expected"]
    whole = pd.read_parquet(shards / "whole" / "conformance.parquet")[key]
    merged = pd.read_parquet(shards / "merged" / "conformance.parquet")[key]
    parts = [pd.read_parquet(shards / s / "conformance.parquet") for s in ("s1", "s2")]
    assert set(parts[0]["case"]).isdisjoint(parts[1]["case"]) and all(len(p) for p in parts)
    pd.testing.assert_frame_equal(whole.sort_values("row_id").reset_index(drop=True),
                                  merged.sort_values("row_id").reset_index(drop=True))
    meta = json.loads((shards / "merged" / "meta.json").read_text())
    assert meta["kind"] == "merged" and meta["shards"] == "complete" and meta["complete"] is True
    assert [s["shard"] for s in meta["sources"]] == ["1/2", "2/2"]
    assert meta["fingerprint"] == collect_environment()["fingerprint"]
    assert (shards / "merged" / "report.html").is_file() and (shards / "merged" / "report.md").is_file()


def test_a_missing_shard_is_recorded(shards: Path, tmp_path: Path) -> None:
    done = run_cli("merge", str(shards / "s1"), str(shards / "whole"), "--out", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["shards"].startswith("mixed")


@pytest.mark.parametrize(
    ("runs", "fragment"),
    [(["s1"], "merge needs two or more run folders"), (["s1", "s1"], "is given twice"),
     (["s1", "nowhere"], "is not a run folder")],
)
def test_merge_bad_usage(shards: Path, tmp_path: Path, runs: list[str], fragment: str) -> None:
    assert_usage_error(run_cli("merge", *[str(shards / r) for r in runs], "--out", str(tmp_path / "out")), fragment)


def test_history_reads_every_run_once(shards: Path) -> None:
    corrupt = shards / "corrupt"
    corrupt.mkdir(exist_ok=True)
    (corrupt / "meta.json").write_text("{not json")
    history = load_history(shards)
    assert set(history["kind"]) == {"accuracy", "findings"}
    assert history["run_id"].nunique() == 3  # whole, s1, s2; the merged run's rows are theirs
    skipped = " ".join(history.attrs["skipped"])
    assert "corrupt" in skipped and "merges runs that are here too" in skipped
    whole = history[history["run_path"].str.endswith("whole") & (history["kind"] == "accuracy")]
    rows = pd.read_parquet(shards / "whole" / "conformance.parquet")
    assert whole["rows"].sum() == len(rows) and whole["passed"].sum() == (rows["status"] == "pass").sum()
    written = write_history(shards)
    assert [p.name for p in written] == ["history.md", "history.html"]
    assert "numpy.logits" in written[0].read_text()
    done = run_cli("history", str(shards / "nowhere"))
    assert done.returncode == 2 and "is not a folder of runs" in done.stderr
