"""Faults, interruptions and bad input: every computed result is kept, and the user gets one clear line.

Faults are injected by a test-only adapter registered through the entry-point group (tests/e2e/fault_adapter.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli
from tests.e2e.fault_adapter import TRIGGER


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An import path holding a distribution whose entry point registers the fault adapter."""
    root = tmp_path_factory.mktemp("plugin")
    info = root / "bce_harness_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bce-harness-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bce_harness.implementations]\n"
                                           "faulty = tests.e2e.fault_adapter:FaultAdapter\n")
    return str(root)


@pytest.fixture(scope="module")
def faulty_run(plugin: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("faults")
    cases = root / "cases.json"
    cases.write_text(json.dumps({"cases": [
        {"name": "before", "input_form": "logits", "x": [0.5, -1.0], "y": [1, 0]},
        {"name": "trigger", "input_form": "logits", "x": [TRIGGER, 1.0], "y": [1, 0]},
        {"name": "after", "input_form": "logits", "x": [2.0, -3.0], "y": [0, 1]},
    ]}))
    out = root / "run"
    done = run_cli("audit", "--frameworks", "faulty", "--cases", str(cases), "--dtypes", "float32", "--jobs", "1",
                   "--timeout", "5", "--memory-limit", "1", "--out", str(out), "--quiet", extra_path=plugin)
    return out, done


@pytest.mark.parametrize(
    ("impl", "status", "why"),
    [
        ("faulty.segfault", "crashed", "worker died with signal 11"),
        ("faulty.abort", "crashed", "worker died with signal 6"),
        ("faulty.hang", "timeout", "no result for 5 s"),
        ("faulty.memory", "crashed", "over the memory limit of 1.0 GiB"),
    ],
)
def test_a_fault_costs_only_the_case_it_hit(faulty_run: tuple[Path, subprocess.CompletedProcess[str]], impl: str,
                                            status: str, why: str) -> None:
    out, done = faulty_run
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out / "conformance.parquet")
    mine = table[table["impl"] == impl]
    hit = mine[mine["case"] == "trigger"]
    assert len(hit) == 6 and set(hit["status"]) == {status}  # 3 reductions × loss and grad
    assert hit["error_message"].str.contains(why, regex=False).all()
    assert set(mine[mine["case"] != "trigger"]["status"]) == {"pass"}  # before and after it: computed and judged
    assert f"fault: {impl} on case 'trigger' (float32, eager): {status}" in done.stdout


def test_faults_are_recorded_in_meta(faulty_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = faulty_run
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is True
    assert [(f["impl"], f["status"]) for f in meta["faults"]] == [
        ("faulty.segfault", "crashed"), ("faulty.abort", "crashed"), ("faulty.hang", "timeout"),
        ("faulty.memory", "crashed")]
    table = pd.read_parquet(out / "conformance.parquet")
    assert table["row_id"].is_unique and len(table) == 4 * 3 * 6


MATRIX = ("audit", "--frameworks", "numpy,torch", "--dtypes", "float32,float16", "--families",
          "seed,large,logit_thresholds,labels,weights,random", "--quiet")
STABLE = ["row_id", "status", "deviation", "max_ulp_error", "got", "expected", "worst_index", "error_type",
          "out_dtype"]


def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    done = run_cli(*MATRIX, "--out", str(whole))
    assert done.returncode == 0, done.stderr
    cut = tmp_path / "cut"
    process = subprocess.Popen([sys.executable, "-m", "harness", *MATRIX, "--out", str(cut)],
                               env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = cut / "journal.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 20:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the audit finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)  # the runner and its workers, mid-write if need be
    process.wait()
    kept = len(journal.read_text().splitlines())
    assert json.loads((cut / "meta.json").read_text())["complete"] is False
    assert not (cut / "conformance.parquet").exists()

    started = json.loads((cut / "meta.json").read_text())
    resumed = run_cli("audit", "--resume", str(cut), "--quiet", "--timeout", "300")
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((cut / "meta.json").read_text())
    # the run's own workers and memory limit, and the time limit given anew, are what the resumed part used
    assert (meta["jobs"], meta["memory_limit_gib"], meta["timeout_s"]) == (
        started["jobs"], started["memory_limit_gib"], 300.0)
    assert meta["complete"] is True and meta["resumed"][0]["rows_kept"] >= 20 and kept >= 20
    expected = pd.read_parquet(whole / "conformance.parquet")[STABLE].sort_values("row_id").reset_index(drop=True)
    got = pd.read_parquet(cut / "conformance.parquet")
    assert got["row_id"].is_unique  # nothing twice
    whole_table = pd.read_parquet(whole / "conformance.parquet")
    keys = ["impl", "case", "dtype", "reduction", "quantity", "check", "mode", "status"]
    missing = whole_table[~whole_table["row_id"].isin(got["row_id"])][keys].to_dict("records")
    extra = got[~got["row_id"].isin(whole_table["row_id"])][keys].to_dict("records")
    assert not missing and not extra, f"rows lost by the resume: {missing}; rows it added: {extra}"
    pd.testing.assert_frame_equal(got[STABLE].sort_values("row_id").reset_index(drop=True), expected)
    # the same seed, the same case bytes
    assert meta["case_digest"] == json.loads((whole / "meta.json").read_text())["case_digest"]


def test_a_resumed_audit_keeps_its_own_limits_unless_given_anew() -> None:
    from harness.options import resume_limits

    meta = {"jobs": 3, "timeout_s": 5.0, "memory_limit_gib": 1.5}
    assert resume_limits(meta) == (3, 5.0, 1.5)
    assert resume_limits(meta, 1, 30.0, 2.0) == (1, 30.0, 2.0)
    # a run that recorded no memory limit (the machine's memory unknown then) gets the default share now
    jobs, _, limit = resume_limits({"jobs": 3, "timeout_s": 5.0, "memory_limit_gib": None})
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert jobs == 3 and limit == round(total / 4, 1)


def test_the_same_audit_twice_gives_the_same_table(tmp_path: Path) -> None:
    small = ("audit", "--frameworks", "numpy", "--dtypes", "float32", "--families", "seed,random", "--quiet")
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli(*small, "--out", str(first)).returncode == 0
    assert run_cli(*small, "--out", str(second)).returncode == 0
    a, b = (pd.read_parquet(p / "conformance.parquet").drop(columns="run_id") for p in (first, second))
    pd.testing.assert_frame_equal(a, b)
    digests = [json.loads((p / "meta.json").read_text())["case_digest"] for p in (first, second)]
    assert digests[0] == digests[1]
    third = tmp_path / "c"
    assert run_cli(*small, "--seed", "1", "--out", str(third)).returncode == 0
    assert json.loads((third / "meta.json").read_text())["case_digest"] != digests[0]  # another seed, other bytes


def test_bench_resume_keeps_finished_groups_and_redoes_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["bench", "--frameworks", "numpy", "--sizes", "1e3,1e5,1e6", "--sweeps", "3", "--threads", "1",
            "--out", str(out), "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "harness", *args], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                               cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "bench-journal.jsonl"

    def records() -> list[dict[str, Any]]:
        lines = journal.read_text().splitlines() if journal.is_file() else []
        return [json.loads(line)["rows"][0] for line in lines if line.endswith("}")]

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any(r.get("n") == 100000 and r["event"] == "block" for r in records()):  # into the second group
            break
        time.sleep(0.01)
    assert process.poll() is None, "the benchmark finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = [r for r in records() if r.get("n") == 1000 and r["event"] == "block"]
    assert len(before) == 2 * 3  # the first group finished: 2 configurations × 3 sweeps

    done = run_cli("bench", "--resume", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(out / "bench.parquet")
    assert frame["row_id"].is_unique and len(frame) == 3 * 2 and (frame["rounds"] > 0).all()
    document = json.loads((out / "bench.json").read_text())
    for entry in document["benchmarks"]:
        params = entry["params"]
        if params.get("n") == 1000 and "impl" in params:  # kept from before the kill, not timed again
            kept = [t for r in before if r["direction"] == params["direction"] for t in r["data"]]
            assert entry["stats"]["data"] == kept
    meta = json.loads((out / "meta.json").read_text())
    assert meta["bench"]["complete"] is True and len(meta["bench"]["resumed"]) == 1
