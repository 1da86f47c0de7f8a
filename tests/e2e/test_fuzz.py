"""`python -m harness fuzz` end to end on NumPy's worked-example formula (a quick framework to start): it finds the
float32 cancellation at x ≪ 0, y = 0 by itself, shrinks it to one element with its onset (checked here against
the formula run directly), writes cases that `audit --cases` replays with the same statuses, and the same seed
gives the same cases; `--budget` stops it early and says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cases import Case
from harness.conformance.plan import Job
from harness.fuzzer import Prober
from implementations.numpy_adapter import worked_example
from tests.conftest import run_cli
from tests.e2e.fault_adapter import TRIGGER, FaultAdapter

FUZZ = ("fuzz", "--frameworks", "numpy", "--impls", "numpy.lse_formula", "--dtypes", "float32", "--modes", "eager",
        "--max-examples", "25", "--seed", "1", "--quiet")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    done = run_cli(*FUZZ, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "minimal failures" in done.stdout and "fuzz-cases.json" in done.stdout
    return out


def _failures(run: Path) -> list[dict[str, object]]:
    return list(json.loads((run / "meta.json").read_text())["fuzz"]["failures"])


def test_it_finds_the_cancellation_and_where_it_starts(fuzzed: Path) -> None:
    zero = [f for f in _failures(fuzzed) if "the float32 loss is 0.0" in str(f["onset"])]
    cases = {c["name"]: c for c in json.loads((fuzzed / "fuzz-cases.json").read_text())["cases"]}
    minimal = [f for f in zero if cases[str(f["case"])]["y"] == ["0x0.0p+0"]]
    assert minimal, [(f["onset"], cases[str(f["case"])]["y"]) for f in zero]
    case = cases[str(minimal[0]["case"])]
    assert len(case["x"]) == 1 and "weight" not in case and "pos_weight" not in case  # one element, y = 0
    at = minimal[0]["onset_at"]
    assert isinstance(at, dict)
    first, last = np.float32(at["first"]), np.float32(at["last"])
    assert np.nextafter(first, last) == last and first < last < 0  # adjacent float32 numbers, x ≪ 0 downward
    x = np.array([last, first, np.nextafter(first, np.float32(-np.inf)), float.fromhex(case["x"][0])],
                 dtype=np.float32)
    loss, _ = worked_example(x, np.zeros(x.size, dtype=np.float32))  # the formula itself, run directly
    assert loss[0] > 0.0 and (loss[1:] == 0.0).all()  # 0.0 from `first` downward (and at the minimal x), not at `last`
    if at["end"] is not None:  # and up to where the exact value itself rounds to (nearly) 0
        end = np.float32(at["end"])
        tail, _ = worked_example(np.array([end], dtype=np.float32), np.zeros(1, dtype=np.float32))
        assert tail[0] == 0.0 and end < first


def test_audit_replays_every_failure_with_its_status_and_the_seed_gives_the_same_cases(
        fuzzed: Path, tmp_path: Path) -> None:
    replay = tmp_path / "replay"
    done = run_cli("audit", "--cases", str(fuzzed / "fuzz-cases.json"), "--frameworks", "numpy", "--quiet",
                   "--out", str(replay))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_parquet(replay / "conformance.parquet").set_index(
        ["case", "impl", "dtype", "reduction", "mode", "quantity", "check"])["status"]
    failures = _failures(fuzzed)
    assert len(failures) >= 5
    for f in failures:
        assert table[(f["case"], f["impl"], f["dtype"], f["reduction"], f["mode"], f["quantity"], f["check"])] \
            == f["status"] == f["replayed"], f
    again = run_cli(*FUZZ, "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "fuzz-cases.json").read_bytes() == (fuzzed / "fuzz-cases.json").read_bytes()


def test_findings_carry_the_onsets(fuzzed: Path) -> None:
    findings = pd.read_parquet(fuzzed / "findings.parquet")
    onsets = dict(zip(findings["finding_id"], findings["onset"], strict=True))
    for f in _failures(fuzzed):
        if str(f["onset"]).startswith("from x ="):
            assert f"{f['impl']}: {f['onset']}" in onsets[f["finding_id"]]
    assert "onset" in (fuzzed / "report.md").read_text()


def test_a_budget_stops_the_search_early_and_says_so(tmp_path: Path) -> None:
    done = run_cli("fuzz", "--frameworks", "numpy", "--impls", "numpy.logits", "--dtypes", "float64",
                   "--max-examples", "100000", "--budget", "2", "--quiet", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())["fuzz"]
    assert meta["stopped_early"] and 0 < meta["searches"][0]["examples"] < 100000
    assert "stopped early" in done.stdout


def test_a_worker_lost_mid_probe_costs_only_the_job_it_was_on(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault adapter segfaults on x[0] = TRIGGER: that job's cells are `crashed`, and a fresh worker computes
    the job queued behind it (the fault adapter is registered through its entry point, as in test_reliability)."""
    info = tmp_path / "bce_harness_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bce-harness-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bce_harness.implementations]\n"
                                           "faulty = tests.e2e.fault_adapter:FaultAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned worker inherits it
    cases = [Case("trigger", "fuzz", "logits", np.array([TRIGGER, 1.0]), np.array([1.0, 0.0])),
             Case("after", "fuzz", "logits", np.array([2.0, -3.0]), np.array([0.0, 1.0]))]
    jobs = [Job(index, "float32", "faulty.segfault", "cpu", ("none", "mean")) for index in (0, 1)]
    prober = Prober({"faulty": FaultAdapter}, timeout=120)
    try:
        rows = prober.run(cases, jobs, use_cache=False)
    finally:
        prober.close()
    status = {(row.case, row.reduction, row.quantity): row.status for row in rows}
    assert len(status) == len(rows) == 8  # every cell answered once: 2 cases × 2 reductions × loss and grad
    assert {v for (case, _, _), v in status.items() if case == "trigger"} == {"crashed"}
    assert {v for (case, _, _), v in status.items() if case == "after"} == {"pass"}
    assert prober.restarts["faulty"] == 1 and prober.calls["faulty"] == 2  # the rest went to a fresh worker
