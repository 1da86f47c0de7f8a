"""`python -m harness compare` on hand-made run folders: regressions caught, A/A runs clean, missing columns and
bad folders handled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.timing import BlockOptions, benchmark_document, benchmark_entry
from harness.findings import record_findings
from harness.store.schema import bench_row_id, row_id
from reports.compare import compare_runs, render_comparison
from tests.conftest import assert_usage_error, run_main
from tests.reports.runs import audit_folder

SWEEPS, ROUNDS = 10, 3
CONFIGS = [("torch.logits", "eager"), ("torch.logits", "torch.compile"), ("jax.logits", "jax.jit")]


def _conformance(statuses: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """One loss row per case name: (status, max_ulp_error)."""
    rows = []
    for case, (status, ulp) in statuses.items():
        rows.append({"row_id": row_id("torch.logits", case, "float32", "cpu", "mean", "loss"), "impl": "torch.logits",
                     "case": case, "dtype": "float32", "device": "cpu", "reduction": "mean", "quantity": "loss",
                     "check": "reference", "mode": "eager", "status": status, "max_ulp_error": ulp})
    return pd.DataFrame(rows)


def make_run(folder: Path, *, statuses: dict[str, tuple[str, float]] | None = None,
             times: dict[tuple[str, str], np.ndarray] | None = None, drop: tuple[str, ...] = (),
             processes: int = 3) -> Path:
    """A run folder as the harness writes it; `times` gives each configuration's rounds, sweep after sweep."""
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"run_id": folder.name, "schema_version": 1, "complete": True}))
    if statuses is not None:
        _conformance(statuses).to_parquet(folder / "conformance.parquet")
    if times is not None:
        rows, entries = [], []
        for (impl, mode), data in times.items():
            key = (impl, mode, "forward", "cpu", "float32", "100000")
            rows.append({"row_id": bench_row_id(*key), "impl": impl, "mode": mode, "direction": "forward",
                         "device": "cpu", "dtype": "float32", "n": 100000, "rounds": data.size, "sweeps": SWEEPS,
                         "processes": processes, "median_s": float(np.median(data))})
            params = dict(zip(("impl", "mode", "direction", "device", "dtype", "n"), key, strict=True))
            entries.append(benchmark_entry("bce", "g", params, {}, BlockOptions(), 1, data.tolist()))
        pd.DataFrame(rows).drop(columns=list(drop)).to_parquet(folder / "bench.parquet")
        (folder / "bench.json").write_text(json.dumps(benchmark_document(entries)))
    return folder


def _times(rng: np.random.Generator, scale: float = 1.0, drift: float = 0.04) -> dict[tuple[str, str], np.ndarray]:
    """Rounds of ~1 ms × scale: each sweep drifts by up to ±`drift`, each round jitters by 2 %."""
    out = {}
    for config in CONFIGS:
        sweep_level = 1 + rng.uniform(-drift, drift, SWEEPS)
        jitter = 1 + 0.02 * rng.standard_normal(SWEEPS * ROUNDS)
        out[config] = 1e-3 * scale * np.repeat(sweep_level, ROUNDS) * jitter
    return out


def _changed_pair(tmp_path: Path, seed: int, config: tuple[str, str], factor: float,
                  drift: float = 0.04) -> tuple[Path, Path]:
    """Two runs of fresh noise; in the new one, `config` takes `factor` times as long."""
    rng = np.random.default_rng(seed)
    base = make_run(tmp_path / "base", times=_times(rng, drift=drift))
    changed = _times(rng, drift=drift)
    changed[config] *= factor
    return base, make_run(tmp_path / "new", times=changed)


def test_a_slowdown_is_caught(tmp_path: Path) -> None:
    base, new = _changed_pair(tmp_path, 1, ("torch.logits", "eager"), 1.3)
    comparison = compare_runs(base, new)
    verdicts = dict(zip(comparison.speed["impl"] + "/" + comparison.speed["mode"], comparison.speed["verdict"],
                        strict=True))
    assert verdicts == {"torch.logits/eager": "slower", "torch.logits/torch.compile": "", "jax.logits/jax.jit": ""}
    # 10 sweeps against 10, completely separated: one-sided p = 1 / C(20, 10); Holm multiplies it by 3
    slower = comparison.speed[comparison.speed["verdict"] == "slower"].iloc[0]
    assert slower["p_slower_holm"] == pytest.approx(3 / 184756, rel=1e-2)
    # relative to its group (the geometric mean of the three): 1.3 / 1.3^(1/3) = 1.3^(2/3)
    assert slower["relative_ratio"] == pytest.approx(1.3 ** (2 / 3), rel=0.03)
    assert comparison.regressions == 1
    done = run_main("compare", str(base), str(new), "--fail-on-regression")
    assert done.returncode == 1 and "**1 regression**" in done.stdout
    assert run_main("compare", str(base), str(new)).returncode == 0  # without the flag it only reports
    assert "(α = 0.05)" in render_comparison(compare_runs(base, new, alpha=0.05))  # the α it used, not the default


def test_a_rerun_of_the_same_code_is_clean(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    false_positives = 0
    for pair in range(20):
        base = make_run(tmp_path / f"a{pair}", times=_times(rng))
        new = make_run(tmp_path / f"b{pair}", times=_times(rng))
        false_positives += compare_runs(base, new).regressions
    assert false_positives == 0


def test_one_slow_process_is_a_sample_not_a_regression(tmp_path: Path) -> None:
    """The same code, 35 % slower for the whole life of one worker process (measured on this kind of machine):
    with three processes taking the sweeps in turn it is 4 samples of 10 and the median does not move; with one
    process it is the whole run, the false alarm that several processes prevent — and the note says so."""
    rng = np.random.default_rng(8)
    base = make_run(tmp_path / "base", times=_times(rng))
    unlucky = _times(rng)
    in_process_0 = np.repeat(np.arange(SWEEPS) % 3 == 0, ROUNDS)  # sweeps 0, 3, 6, 9
    unlucky[("torch.logits", "eager")] *= np.where(in_process_0, 1.35, 1.0)
    comparison = compare_runs(base, make_run(tmp_path / "new", times=unlucky))
    assert comparison.regressions == 0 and comparison.speed["ratio"].max() < 1.1
    assert not any("one process" in note for note in comparison.notes)

    one_process = _times(rng)
    one_process[("torch.logits", "eager")] *= 1.35
    single = compare_runs(base, make_run(tmp_path / "single", times=one_process, processes=1))
    assert single.regressions == 1  # indistinguishable from a real slowdown: why runs use several processes
    assert any(note.startswith("the new run timed each framework in one process") for note in single.notes)
    older = make_run(tmp_path / "older", times=_times(rng), drop=("processes",))  # made before it was recorded
    assert any(note.startswith("the base and new run timed") for note in compare_runs(older, older).notes)
    mixed = make_run(tmp_path / "mixed", times=_times(rng))  # merged from a new shard and one made before
    table = pd.read_parquet(mixed / "bench.parquet")
    table.loc[0, "processes"] = np.nan
    table.to_parquet(mixed / "bench.parquet")
    assert any(note.startswith("the new run timed") for note in compare_runs(base, mixed).notes)


def test_a_small_but_certain_change_is_below_the_minimum_effect(tmp_path: Path) -> None:
    base, new = _changed_pair(tmp_path, 3, ("jax.logits", "jax.jit"), 1.08, drift=0.0)
    comparison = compare_runs(base, new)
    assert comparison.speed["p_slower_holm"].min() < 0.01  # significant …
    assert comparison.regressions == 0  # … but 8 % is below the 10 % that counts
    # with a 3 % threshold it counts: 8 % in absolute time, 1.08^(2/3) − 1 = 5.3 % relative to its group
    assert compare_runs(base, new, min_effect=0.03).regressions == 1


def test_the_whole_machine_running_slower_is_not_a_regression(tmp_path: Path) -> None:
    """Every configuration 30 % slower at once: the machine (a noisy neighbour, a slower host), not the code."""
    rng = np.random.default_rng(6)
    base = make_run(tmp_path / "base", times=_times(rng))
    new = make_run(tmp_path / "new", times=_times(rng, scale=1.3))
    comparison = compare_runs(base, new)
    assert (comparison.speed["ratio"] > 1.2).all() and comparison.regressions == 0


def test_faster_is_reported_not_failed(tmp_path: Path) -> None:
    comparison = compare_runs(*_changed_pair(tmp_path, 4, ("torch.logits", "torch.compile"), 0.5))
    assert list(comparison.speed["verdict"]) == ["", "", "faster"] and comparison.regressions == 0


def test_accuracy_regressions(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", statuses={
        "a": ("pass", 0.5), "b": ("fail", 1e3), "c": ("pass", 1.0), "d": ("fail", 1e3), "e": ("pass", 0.0),
        "f": ("pass", 0.5), "g": ("fail", 100.0)})
    new = make_run(tmp_path / "new", statuses={
        "a": ("fail", 2e6), "b": ("pass", 1.0), "c": ("error", float("nan")), "d": ("fail", 1.5e3),
        "e": ("unavailable", float("nan")), "f": ("pass", 3.0), "g": ("fail", 1e5)})
    comparison = compare_runs(base, new)
    verdicts = dict(zip(comparison.accuracy["case"], comparison.accuracy["verdict"], strict=True))
    # a: lost its pass; c: a new error; g: still failing, 1000 times worse. b: now passes. d grew by half (not
    # doubled): noise; e: torch missing in the new run, not judged; f: still within 4 ULP
    assert verdicts == {"a": "regression", "b": "improvement", "c": "regression", "g": "regression"}
    assert comparison.regressions == 3
    assert any("unavailable on one side only" in note for note in comparison.notes)
    text = render_comparison(comparison)
    assert "**3 regressions**" in text and "### regression (3)" in text


def test_missing_columns_and_one_sided_parts_are_notes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = make_run(tmp_path / "base", statuses={"a": ("pass", 0.0)}, times=_times(rng), drop=("sweeps",))
    new = make_run(tmp_path / "new", statuses={"a": ("pass", 0.0)}, times=_times(rng, scale=2.0))
    comparison = compare_runs(base, new)
    assert comparison.speed.empty and comparison.regressions == 0
    assert "speed not compared: the base run's bench table lacks sweeps" in comparison.notes
    uneven = make_run(tmp_path / "uneven", times=_times(rng))  # one configuration lost a round of bench.json
    document = json.loads((uneven / "bench.json").read_text())
    document["benchmarks"][0]["stats"]["data"].pop()
    (uneven / "bench.json").write_text(json.dumps(document))
    partial = compare_runs(new, uneven)
    assert len(partial.speed) == len(CONFIGS) - 1
    assert ("1 configurations timed in both runs were not compared: their rounds in bench.json are missing or do "
            "not split into equal per-sweep blocks") in partial.notes
    audit_only = make_run(tmp_path / "audit-only", statuses={"a": ("pass", 0.0)})
    assert "speed not compared: only one of the runs has a benchmark" in compare_runs(audit_only, new).notes


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda root: root / "nowhere", "is not a run folder"),
        (lambda root: make_run(root / "empty"), "has neither conformance.parquet nor bench.parquet"),
    ],
)
def test_bad_run_folders_exit_2(tmp_path: Path, make: Any, fragment: str) -> None:
    good = make_run(tmp_path / "good", statuses={"a": ("pass", 0.0)})
    assert_usage_error(run_main("compare", str(good), str(make(tmp_path))), fragment)


def test_a_busier_machine_is_noted(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    base = make_run(tmp_path / "base", times=_times(rng))
    new = make_run(tmp_path / "new", times=_times(rng))
    for folder, load in ((base, {"start": 0.2, "end": 0.4}), (new, {"start": 2.5, "end": 1.9})):
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(dict(meta, bench={"load_average": load})))
    notes = compare_runs(base, new).notes
    assert any("load average up to 0.4 in base, 2.5 in new" in note for note in notes)


def test_findings_new_fixed_and_changed_in_scope(tmp_path: Path) -> None:
    """By finding id: the nonfinite finding gone is fixed; the same finding back is new, an alarm, so a
    regression (exit 1 with --fail-on-regression); a finding in another implementation changed in scope."""
    base, new = audit_folder(tmp_path / "base"), audit_folder(tmp_path / "new", run_id="run-b")
    table = pd.read_parquet(new / "conformance.parquet")
    moved = table["status"] == "fail"
    table.loc[moved, ["impl", "framework"]] = ["jax.logits", "jax"]
    table[table["status"] != "nonfinite"].to_parquet(new / "conformance.parquet", index=False)
    record_findings(base)
    record_findings(new)
    forward = compare_runs(base, new)
    assert sorted(forward.findings["verdict"]) == ["changed in scope", "fixed"]
    assert "jax.logits added" in forward.findings.set_index("verdict").loc["changed in scope", "scope"]
    assert forward.regressions == 0
    backward = compare_runs(new, base)
    assert list(backward.findings["verdict"]) == ["new", "changed in scope"] and backward.regressions == 1
    assert "## Findings" in render_comparison(backward)
    done = run_main("compare", str(new), str(base), "--fail-on-regression")
    assert done.returncode == 1, done.stdout
