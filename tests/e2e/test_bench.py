"""The benchmark end to end on tiny sizes: structure, sync calls, compile-time separation, thread settings,
ratios, roofline arithmetic, the pytest-benchmark JSON, statuses from an audit, and bad usage. Never wall time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness import bench
from harness.benchmark.timing import BlockOptions
from harness.store.schema import BENCH_COLUMNS
from tests.conftest import assert_usage_error, run_cli

TINY = BlockOptions(min_rounds=2, max_time=0.005, min_time=1e-4)
SWEEPS = 2
# every framework's own logits API in every mode it has, both directions: numpy 1 mode, torch 2, jax 2, tensorflow 3
FRAMEWORKS = ["numpy", "torch", "jax", "tensorflow"]
EXPECTED_CONFIGS = 2 * (1 + 2 + 2 + 3)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("bench") / "run"
    return bench(frameworks=FRAMEWORKS, sizes=[1000], sweeps=SWEEPS, threads=1, out=out, options=TINY)


def _folder(frame: pd.DataFrame) -> Path:
    return Path(frame.attrs["run_dir"])


def test_rows_and_columns(tiny_bench: pd.DataFrame) -> None:
    assert list(tiny_bench.columns) == BENCH_COLUMNS
    assert len(tiny_bench) == EXPECTED_CONFIGS
    assert (tiny_bench["error_type"] == "").all() and (tiny_bench["status"] == "").all()  # no audit here
    assert set(tiny_bench["mode"]) == {"eager", "torch.compile", "jax.jit", "tf.function",
                                       "tf.function(jit_compile=True)"}
    assert set(tiny_bench["impl"]) == {"numpy.logits", "torch.logits", "jax.logits", "tensorflow.logits"}
    assert tiny_bench["row_id"].is_unique
    assert (tiny_bench["framework_version"] != "").all()
    stored = pd.read_parquet(_folder(tiny_bench) / "bench.parquet")
    pd.testing.assert_frame_equal(stored, tiny_bench.reset_index(drop=True), check_like=False)


def test_rounds_come_from_every_sweep(tiny_bench: pd.DataFrame) -> None:
    assert (tiny_bench["sweeps"] == SWEEPS).all()
    # every sweep gives one block of the same number of rounds (at least min_rounds) to each configuration
    assert (tiny_bench["rounds"] % SWEEPS == 0).all() and (tiny_bench["rounds"] >= SWEEPS * TINY.min_rounds).all()
    assert (tiny_bench["min_s"] <= tiny_bench["median_s"]).all() and (tiny_bench["iqr_s"] >= 0).all()


def test_ratio_to_best_is_taken_side_by_side(tiny_bench: pd.DataFrame) -> None:
    assert (tiny_bench["ratio_low"] <= tiny_bench["ratio_to_best"]).all()
    assert (tiny_bench["ratio_to_best"] <= tiny_bench["ratio_high"]).all()
    for _, group in tiny_bench.groupby("direction"):
        # in each sweep one configuration is the fastest, with a ratio of exactly 1
        assert group["ratio_low"].min() == 1.0 and (group["ratio_low"] >= 1.0).all()


def test_bytes_bandwidth_and_roofline_arithmetic(tiny_bench: pd.DataFrame) -> None:
    assert (tiny_bench["bytes"] == 2 * 1000 * 4).all()  # x and y, float32
    assert np.allclose(tiny_bench["gbps"], 8000 / tiny_bench["median_s"] / 1e9, rtol=1e-12)
    assert np.allclose(tiny_bench["roofline_fraction"], tiny_bench["gbps"] / tiny_bench["baseline_gbps"],
                       rtol=1e-12)
    meta = json.loads((_folder(tiny_bench) / "meta.json").read_text())
    reads = meta["bench"]["baselines"]
    assert {b["framework"] for b in reads} == {"numpy", "torch", "jax", "tensorflow"}
    fastest = min(b["median_s"] for b in reads)
    assert np.allclose(tiny_bench["baseline_gbps"], 8000 / fastest / 1e9, rtol=1e-12)


def test_compile_time_and_peak_memory_are_recorded(tiny_bench: pd.DataFrame) -> None:
    assert (tiny_bench["compile_s"] > 0).all() and np.isfinite(tiny_bench["compile_s"]).all()
    assert (tiny_bench["peak_memory_bytes"] >= 0).all()
    assert tiny_bench["peak_memory_note"].str.startswith("resident-set high-water mark").all()


def test_threads_are_the_same_for_every_framework(tiny_bench: pd.DataFrame) -> None:
    threads = json.loads((_folder(tiny_bench) / "meta.json").read_text())["bench"]["threads"]
    assert threads["requested"] == 1 and len(threads["cpus"]) == 1
    per_framework = threads["frameworks"]
    assert {name: info["cpus"] for name, info in per_framework.items()} == dict.fromkeys(
        ("numpy", "torch", "jax", "tensorflow"), threads["cpus"])
    assert per_framework["torch"]["intra_op"] == 1 and per_framework["tensorflow"]["intra_op"] == 1


def test_raw_rounds_are_pytest_benchmark_json(tiny_bench: pd.DataFrame) -> None:
    file = _folder(tiny_bench) / "bench.json"
    document = json.loads(file.read_text())
    timed = [b for b in document["benchmarks"] if b["name"].startswith("bce[")]
    # + 4 reads and the kernel's 2 directions
    assert len(timed) == EXPECTED_CONFIGS and len(document["benchmarks"]) == EXPECTED_CONFIGS + 4 + 2
    for entry in timed:
        params = entry["params"]
        row = tiny_bench[(tiny_bench["impl"] == params["impl"]) & (tiny_bench["mode"] == params["mode"])
                         & (tiny_bench["direction"] == params["direction"])].iloc[0]
        assert len(entry["stats"]["data"]) == row["rounds"] and entry["stats"]["median"] == row["median_s"]
    done = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(file), "--group-by=group"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "bce[torch.logits-torch.compile-forward-cpu-float32-1000]" in done.stdout


def test_each_framework_is_timed_in_its_processes_in_turn(tiny_bench: pd.DataFrame) -> None:
    folder = _folder(tiny_bench)
    meta = json.loads((folder / "meta.json").read_text())["bench"]
    # two sweeps: the default of three processes is capped at the number of sweeps
    assert meta["processes"] == SWEEPS and (tiny_bench["processes"] == SWEEPS).all()
    for name, info in meta["workers"].items():
        assert len(set(info["pids"])) == SWEEPS and info["problem"] == "", name
    blocks = [row for line in (folder / "bench-journal.jsonl").read_text().splitlines()
              for row in json.loads(line)["rows"] if row.get("event") == "block"]
    first = [row for row in blocks if "pass" not in row]
    assert len(first) == SWEEPS * (EXPECTED_CONFIGS + 4 + 2)  # every configuration, read and kernel direction
    again = [row for row in blocks if row.get("pass") == 2]  # what looked disturbed, and the fastest beside it
    assert len(again) % SWEEPS == 0 and all("impl" in row for row in again)
    assert bool(again) == bool(meta["checks"][0]["retimed"])
    assert all(row["process"] == row["sweep"] % SWEEPS for row in blocks)  # sweep s in process s mod 2
    assert sorted(p.name for p in (folder / "logs").iterdir() if p.name.startswith("bench-numpy")) == [
        "bench-numpy-0.log", "bench-numpy-1.log"]
    document = json.loads((folder / "bench.json").read_text())
    assert {b["extra_info"]["processes"] for b in document["benchmarks"] if b["name"].startswith("bce[")} == {2}


def test_the_limit_is_the_memory_floor_or_the_kernel_whichever_is_slower(tiny_bench: pd.DataFrame) -> None:
    kernel = json.loads((_folder(tiny_bench) / "meta.json").read_text())["bench"]["kernel"]
    if "unavailable" in kernel["build"]:
        pytest.skip(f"no kernel here: {kernel['build']['unavailable']}")
    assert kernel["build"]["flags"][:2] == ["-O3", "-march=native"] and kernel["workers"]["problem"] == ""
    times = {t["direction"]: t for t in kernel["times"]}
    assert times["forward"]["accuracy"].startswith("loss pass (")  # judged against the exact reference
    assert "grad pass (" in times["forward_backward"]["accuracy"]
    floor = 1000 * 8 / tiny_bench["baseline_gbps"] / 1e9  # the best read of the same bytes, in seconds
    kernel_s = tiny_bench["direction"].map({d: t["median_s"] for d, t in times.items()})
    assert np.allclose(tiny_bench["limit_s"], np.maximum(floor, kernel_s), rtol=1e-12)
    assert (tiny_bench["limit_kind"] == np.where(kernel_s >= floor, "kernel", "memory")).all()
    assert np.allclose(tiny_bench["fraction_of_limit"], tiny_bench["limit_s"] / tiny_bench["median_s"], rtol=1e-12)


def test_one_configuration_per_framework_is_timed_by_its_own_timer(tiny_bench: pd.DataFrame) -> None:
    checked = tiny_bench[tiny_bench["own_timer_s"].notna()]
    assert dict(zip(checked["framework"], checked["own_timer"], strict=True)) == {
        "numpy": "timeit", "torch": "torch.utils.benchmark", "jax": "timeit", "tensorflow": "timeit"}
    assert (checked["mode"] == "eager").all() and (checked["direction"] == "forward").all()
    assert (checked["own_timer_s"] > 0).all()
    assert tiny_bench["stable"].dtype == "boolean" and tiny_bench["stable"].notna().all()
    unstable = tiny_bench[~tiny_bench["stable"].astype(bool)]
    assert (unstable["stability_note"] != "").all() and (tiny_bench[tiny_bench["stable"].astype(bool)]
                                                          ["stability_note"] == "").all()


def test_a_framework_that_loses_a_process_loses_its_remaining_configurations() -> None:
    """Process 2 of numpy's two is killed during sweep 1 of the first size, before its first block: from sweep 2
    on, numpy's configurations of both sizes are WorkerLost rows naming the process; torch is untouched, and the
    progress still reaches its total (the sweeps of what could not be prepared leave it)."""
    import multiprocessing
    import os
    import signal

    from harness.benchmark.plan import bench_configs
    from harness.benchmark.sweeps import run_bench
    from implementations import adapter_classes

    adapters = {name: adapter_classes()[name] for name in ("numpy", "torch")}
    configs = bench_configs(adapters, None, ["eager"], sizes=(100, 200))
    steps: list[tuple[int, int, str]] = []
    journal: list[dict[str, Any]] = []

    def progress(done: int, total: int, what: str) -> None:
        steps.append((done, total, what))
        if what.startswith("sweep 1/2") and not any(s[2].startswith("sweep 2/2") for s in steps):
            for child in multiprocessing.active_children():
                if child.name == "bce-bench-numpy-1" and child.pid is not None:
                    os.kill(child.pid, signal.SIGKILL)
                    child.join(10)

    result = run_bench(configs, adapters, sweeps=2, processes=2, options=TINY, progress=progress,
                       journal=journal.append)
    rows = pd.DataFrame(result.rows)
    numpy_rows, torch_rows = rows[rows["framework"] == "numpy"], rows[rows["framework"] == "torch"]
    assert (numpy_rows["error_type"] == "WorkerLost").all() and len(numpy_rows) == 4  # 2 sizes × 2 directions
    assert numpy_rows["error_message"].str.startswith("the numpy (process 2 of 2) worker died").all()
    assert torch_rows["error_type"].isna().all() and (torch_rows["rounds"] > 0).all()
    prepared_numpy_200 = [r for r in journal if r["event"] == "prepared" and r.get("framework") == "numpy"
                          and r.get("n") == 200]
    assert len(prepared_numpy_200) == 2 and all(r["error"][0] == "WorkerLost" for r in prepared_numpy_200)
    assert steps[-1][0] == steps[-1][1]  # done == total: the skipped sweeps left the total
    assert "problem" in result.workers["numpy"] and "process 2 of 2" in result.workers["numpy"]["problem"]


def test_report_has_a_speed_section(tiny_bench: pd.DataFrame) -> None:
    report = (_folder(tiny_bench) / "report.md").read_text()
    assert "# BCE benchmark" in report and "## Speed" in report and "| torch.logits | torch.compile |" in report


def test_status_from_the_audit_in_the_same_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_cli("audit", "--frameworks", "numpy", "--dtypes", "float32", "--families", "seed", "--out", str(out),
                   "--quiet")
    assert done.returncode == 0, done.stderr
    frame = bench(frameworks=["numpy"], sizes=[100], sweeps=2, out=out, options=TINY, threads=1)
    (forward,) = frame[frame["direction"] == "forward"].itertuples()
    # numpy.logits on the seed case in float32: loss and grad × none, mean, sum, all within 4 ULP
    assert forward.status == "pass" and forward.status_detail == "pass 6"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "audit" and meta["bench"]["complete"] is True and (out / "conformance.parquet").is_file()
    again = run_cli("bench", "--frameworks", "numpy", "--sizes", "100", "--out", str(out))
    assert again.returncode == 2 and "already holds a benchmark" in again.stderr
    assert (out / "bench.parquet").is_file()  # nothing lost


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["bench", "--devices", "gpu"], "no installed framework sees a GPU here (checked: numpy, torch"),
        (["gpu-sweep"], "no installed framework sees a GPU here (checked: numpy, torch"),
        (["audit", "--devices", "gpu"], "no installed framework sees a GPU here (checked: numpy, torch"),
        (["bench", "--modes", "turbo"], "unknown mode 'turbo'; available: eager"),
        (["bench", "--impls", "torch.fast"], "unknown implementation 'torch.fast'"),
        (["bench", "--directions", "backward"], "unknown direction 'backward'; available: forward, forward_backward"),
        (["bench", "--sizes", "0"], "--sizes must be positive integers"),
        (["bench", "--sizes", "1e3.5"], "argument --sizes"),
        (["bench", "--sweeps", "1"], "--sweeps must be at least 2"),
        (["bench", "--processes", "0"], "--processes must be from 1 to the number of sweeps (10)"),
        (["bench", "--sweeps", "4", "--processes", "5"], "--processes must be from 1 to the number of sweeps (4)"),
        (["bench", "--threads", "4096"], "--threads 4096: this process may use"),
        (["bench", "--frameworks", "pytorch"], "unknown framework 'pytorch'"),
    ],
)
def test_bench_bad_usage_exits_2_with_one_line(args: list[str], fragment: str) -> None:
    assert_usage_error(run_cli(*args), fragment)
