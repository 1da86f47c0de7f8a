"""From measurements to bench rows: medians and IQRs, ratios to the fastest sweep by sweep, the roofline against
the best read, pytest-benchmark's entries with every round, and the audit's status beside each speed."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cases import bytes_read
from harness.benchmark.measurements import Measurements
from harness.benchmark.plan import BenchConfig, group_of
from harness.benchmark.stability import own_timer_median, ratio_range, sweep_ratios
from harness.benchmark.timing import BlockOptions, benchmark_entry, summarize
from harness.store.schema import BENCH_COLUMNS, BENCH_TEXT_COLUMNS, bench_row_id
from harness.verdict.tolerance import SEVERITY, STATUSES, worst_status

__all__ = ["Timings", "as_frame", "bench_rows", "conformance_status"]

# Statuses that say something about an implementation's accuracy at a dtype (rejecting invalid input is right,
# and unsupported/unavailable say nothing): the bench row shows the worst of these.
_ACCURACY = [s for s in STATUSES if s not in ("rejected", "unsupported", "unavailable")]


@dataclass(frozen=True, slots=True)
class Timings:
    """How a run timed: the sweeps, the processes per framework, and pytest-benchmark's block options."""

    sweeps: int
    processes: int
    options: BlockOptions


def _timed_row(config: BenchConfig, measured: Measurements, ratios: list[float], baseline_s: float | None,
               kernel_s: float | None, nbytes: int) -> dict[str, Any]:
    """The statistics of one timed configuration."""
    prepared = measured.prepared[config]
    blocks = measured.blocks.get(config, [])
    data = measured.data(config)
    stats = summarize(data) if data else {}
    baseline_gbps = nbytes / baseline_s / 1e9 if baseline_s else float("nan")
    median = stats.get("median", float("nan"))
    gbps = nbytes / median / 1e9
    nan = float("nan")
    return dict(
        rounds=len(data), iterations=blocks[0].iterations if blocks else prepared.iterations, median_s=median,
        iqr_s=stats.get("iqr", nan), min_s=stats.get("min", nan), mean_s=stats.get("mean", nan),
        compile_s=prepared.compile_s, gbps=gbps, baseline_gbps=baseline_gbps, roofline_fraction=gbps / baseline_gbps,
        ratio_to_best=float(statistics.median(ratios)) if ratios else nan,
        **dict(zip(("ratio_low", "ratio_high"), ratio_range(ratios) if ratios else (nan, nan), strict=True)),
        peak_memory_bytes=prepared.peak_memory_bytes, peak_memory_note=prepared.peak_memory_note,
        **_limit(median, baseline_s, kernel_s), **_stability(config, measured),
    )


def _limit(median_s: float, memory_floor_s: float | None, kernel_s: float | None) -> dict[str, Any]:
    """The limit of a row: the larger of the memory floor (the best read of the same bytes) and the speed-of-light
    kernel's time; its fraction is limit / median (above 1: faster than the kernel, which is then no limit)."""
    bounds = {kind: value for kind, value in (("memory", memory_floor_s), ("kernel", kernel_s)) if value}
    if not bounds:
        return {"limit_s": float("nan"), "limit_kind": "", "fraction_of_limit": float("nan")}
    kind = max(bounds, key=lambda name: bounds[name])
    return {"limit_s": bounds[kind], "limit_kind": kind, "fraction_of_limit": bounds[kind] / median_s}


def _stability(config: BenchConfig, measured: Measurements) -> dict[str, Any]:
    """Whether the row's timing held (see stability.py), and the framework's own timer when it cross-checked it."""
    own = own_timer_median(measured, config)
    if group_of(config) in measured.undecided:
        stability: dict[str, Any] = {"stable": None, "stability_note": "not checked: resumed from a journal written "
                                                                       "before the benchmark checked itself"}
    else:
        stability = {"stable": config not in measured.unstable, "stability_note": measured.unstable.get(config, "")}
    return {**stability,
            "own_timer": own[0] if own else measured.own_problems.get(config, ""),
            "own_timer_s": own[1] if own else float("nan")}


def bench_rows(configs: Sequence[BenchConfig], measured: Measurements, workers: dict[str, Any],
               timings: Timings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The bench rows (one per configuration, timed or with its reason) and pytest-benchmark's entries."""
    ratios = sweep_ratios(configs, measured, timings.sweeps)
    best_read: dict[tuple[str, str, int], float] = {}
    for read in measured.baselines():
        group = (read["device"], read["dtype"], read["n"])
        best_read[group] = min(best_read.get(group, np.inf), read["median_s"])
    kernel_s = {(k.device, k.dtype, k.n, k.direction): measured.median(k) for k in measured.timed_kernels()}
    rows, entries = [], []
    for config in configs:
        nbytes = bytes_read(config.n, config.dtype)
        version = (workers.get(config.framework, {}).get("versions") or {}).get(config.framework, "")
        row: dict[str, Any] = {**config._asdict(), "framework_version": version, "bytes": nbytes,
                               "sweeps": timings.sweeps, "processes": timings.processes}
        if config in measured.problems:
            row["error_type"], row["error_message"] = measured.problems[config]
        else:
            row |= _timed_row(config, measured, ratios.get(config, []),
                              best_read.get((config.device, config.dtype, config.n)),
                              kernel_s.get((config.device, config.dtype, config.n, config.direction)), nbytes)
            if measured.data(config):
                entries.append(_entry(config, row, measured, timings))
        rows.append(row)
    return rows, entries + _baseline_entries(measured, timings.options)


def _entry(config: BenchConfig, row: dict[str, Any], measured: Measurements, timings: Timings) -> dict[str, Any]:
    params = {"impl": config.impl, "mode": config.mode, "direction": config.direction, "device": config.device,
              "dtype": config.dtype, "n": config.n}
    extra = {"compile_s": row["compile_s"], "bytes": row["bytes"], "gbps": row["gbps"],
             "ratio_to_best": row["ratio_to_best"], "peak_memory_bytes": row["peak_memory_bytes"],
             "sweeps": timings.sweeps, "processes": timings.processes}
    group = f"{config.device} {config.dtype} n={config.n:g} {config.direction}"
    return benchmark_entry("bce", group, params, extra, timings.options, row["iterations"], measured.data(config))


def _baseline_entries(measured: Measurements, options: BlockOptions) -> list[dict[str, Any]]:
    """pytest-benchmark's entries of the reads and of the speed-of-light kernel."""
    entries = []
    for read in measured.timed_reads():
        params = {"framework": read.framework, "device": read.device, "dtype": read.dtype, "n": read.n}
        entries.append(benchmark_entry("read", f"{read.device} {read.dtype} n={read.n:g} read", params,
                                       {"bytes_read": "x and y"}, options, measured.prepared[read].iterations,
                                       measured.data(read)))
    for kernel in measured.timed_kernels():
        params = {"direction": kernel.direction, "device": kernel.device, "dtype": kernel.dtype, "n": kernel.n}
        entries.append(benchmark_entry("kernel", f"{kernel.device} {kernel.dtype} n={kernel.n:g} {kernel.direction}",
                                       params, {"accuracy": measured.prepared[kernel].accuracy}, options,
                                       measured.prepared[kernel].iterations, measured.data(kernel)))
    return entries


def conformance_status(conformance: pd.DataFrame) -> pd.DataFrame:
    """Per (impl, dtype, device, mode): the worst accuracy status of the audit's reference rows, and the counts."""
    keys = ["impl", "dtype", "device", "mode"]
    judged = conformance[(conformance["check"] == "reference") & conformance["status"].isin(_ACCURACY)]
    if judged.empty:
        return pd.DataFrame(columns=[*keys, "status", "status_detail"])

    def summary(statuses: pd.Series) -> pd.Series:
        counts = statuses.value_counts()
        ordered = [status for status in reversed(SEVERITY) if status in counts.index]  # mildest first
        detail = ", ".join(f"{status} {counts[status]}" for status in ordered)
        return pd.Series({"status": worst_status(counts.index), "status_detail": detail})

    table = judged.groupby(keys)["status"].apply(summary).unstack()
    return table.reset_index()


def as_frame(rows: list[dict[str, Any]], run_id: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in BENCH_COLUMNS:
        if column not in frame.columns:
            frame[column] = "" if column in BENCH_TEXT_COLUMNS else np.nan
    for column in BENCH_TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    frame["stable"] = frame["stable"].astype("boolean")  # <NA> where nothing was timed
    frame["run_id"] = run_id
    frame["row_id"] = [bench_row_id(*(str(v) for v in key)) for key in
                       zip(frame["impl"], frame["mode"], frame["direction"], frame["device"], frame["dtype"],
                           frame["n"], strict=True)]
    return frame[BENCH_COLUMNS]
