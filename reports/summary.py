"""Summaries of conformance and speed tables, as DataFrames (renderers format them, never compute more)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cases import DTYPES
from harness.verdict.tolerance import ALARMS, STATUSES, worst_status

__all__ = [
    "STATUS_ORDER", "alarm_rows", "bench_table", "finding_matrix", "finding_rows", "findings_table",
    "framework_versions", "profile_lines", "profile_table", "self_check_rows", "size_label", "status_matrix",
    "unstable", "unstable_rows", "version_changes", "versioned",
]

STATUS_ORDER = list(STATUSES)


def status_matrix(conformance: pd.DataFrame) -> pd.DataFrame:
    """Implementation × dtype: the count of rows per status, and the worst finite ULP error of judged rows."""
    if conformance.empty:
        return pd.DataFrame(columns=["impl", "dtype", *STATUS_ORDER, "worst_ulp"])
    counts = (conformance.groupby(["impl", "dtype", "status"]).size().unstack("status", fill_value=0)
              .reindex(columns=STATUS_ORDER, fill_value=0))
    counts = counts.loc[:, (counts != 0).any(axis=0)]
    ulp = conformance["max_ulp_error"].where(conformance["max_ulp_error"].abs() != float("inf"))
    worst = ulp.groupby([conformance["impl"], conformance["dtype"]]).max().rename("worst_ulp")
    table = counts.join(worst).reset_index()
    dtype_order = {name: i for i, name in enumerate(DTYPES)}
    table["_order"] = table["dtype"].map(dtype_order).fillna(len(dtype_order))
    return table.sort_values(["impl", "_order"]).drop(columns="_order").reset_index(drop=True)


def alarm_rows(conformance: pd.DataFrame) -> pd.DataFrame:
    """The alarm rows (nonfinite, fail, error, crashed, timeout), worst first: what the findings are made of."""
    rank = {status: i for i, status in enumerate(ALARMS)}
    found = conformance[conformance["status"].isin(ALARMS)].copy()
    found["_rank"] = found["status"].map(rank)
    found = found.sort_values(["_rank", "impl", "case", "dtype", "reduction", "quantity"])
    return found.drop(columns="_rank").reset_index(drop=True)


def _short(values: Any, most: int = 4) -> str:
    values = list(values)
    return ", ".join(values[:most]) + (f" and {len(values) - most} more" if len(values) > most else "")


def findings_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings for people: rank, status, the title, where they hold, how many rows, known upstream issues."""
    return pd.DataFrame({
        "rank": findings["rank"], "status": findings["status"], "finding": findings["title"],
        "implementations": [_short(v) for v in findings["impls"]], "dtypes": [_short(v) for v in findings["dtypes"]],
        "rows": findings["rows"],
        "known issues": [str(len(v)) if len(v) else "new" for v in findings["known_issues"]],
        "id": findings["finding_id"],
    })


def finding_rows(findings: pd.DataFrame, conformance: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per (finding, row of it): the finding's id, rank, title and status beside the row's `columns`."""
    members = (findings[["finding_id", "rank", "title", "status", "row_ids"]].explode("row_ids")
               .rename(columns={"row_ids": "row_id", "status": "finding_status"}))
    return members.merge(conformance[["row_id", *[c for c in columns if c != "row_id"]]], on="row_id")


def finding_matrix(conformance: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Implementation × dtype: how many alarm findings and documented conventions touch its rows, the worst
    finding status there, and the share of its rows per status."""
    touched = finding_rows(findings, conformance, ["impl", "dtype"])
    alarm = touched["finding_status"] != "deviation"
    counts = pd.DataFrame({
        "alarms": touched[alarm].groupby(["impl", "dtype"])["finding_id"].nunique(),
        "conventions": touched[~alarm].groupby(["impl", "dtype"])["finding_id"].nunique(),
        "worst": touched.groupby(["impl", "dtype"])["finding_status"].agg(worst_status),
    })
    shares = (conformance.groupby(["impl", "dtype"])["status"].value_counts(normalize=True)
              .unstack("status", fill_value=0).reindex(columns=STATUS_ORDER, fill_value=0))
    table = shares.join(counts).fillna({"alarms": 0, "conventions": 0, "worst": "pass"}).reset_index()
    table[["alarms", "conventions"]] = table[["alarms", "conventions"]].astype(int)
    dtype_order = {name: i for i, name in enumerate(DTYPES)}
    table["_order"] = table["dtype"].map(dtype_order).fillna(len(dtype_order))
    return table.sort_values(["impl", "_order"]).drop(columns="_order").reset_index(drop=True)


def size_label(n: int) -> str:
    """1e7 for 10_000_000, the digits for a size that is not a power of ten times one digit."""
    text = f"{n:.0e}"
    return text.replace("e+0", "e").replace("e+", "e") if float(text) == n else str(n)


def _column(table: pd.DataFrame, name: str, default: Any) -> pd.Series:
    """A column of a stored table, or `default` for a run written before the column existed."""
    return table[name] if name in table.columns else pd.Series(default, index=table.index)


def _limit_label(kind: str, fraction: float) -> str:
    """Which bound the row's limit is; a row faster than the kernel says the kernel is no limit there."""
    if kind == "kernel" and fraction > 1:
        return "kernel (not the limit: slower than this)"
    return kind


def bench_table(bench: pd.DataFrame) -> pd.DataFrame:
    """The speed rows for people: grouped by what is compared (device, dtype, size, direction), fastest first,
    in convenient units; rows that could not be timed keep their reason. `limit_pct`: the limit (the larger of the
    memory floor and the speed-of-light kernel) as a percentage of the row's time."""
    table = bench.sort_values(["device", "dtype", "n", "direction", "ratio_to_best"], na_position="last")
    spread = [f"{low:.2f}–{high:.2f}" if pd.notna(low) else "" for low, high in
              zip(table["ratio_low"], table["ratio_high"], strict=True)]
    fraction = _column(table, "fraction_of_limit", np.nan)
    limit = [_limit_label(kind, value) for kind, value in zip(_column(table, "limit_kind", ""), fraction,
                                                               strict=True)]
    return pd.DataFrame({
        "device": table["device"], "dtype": table["dtype"], "n": [size_label(n) for n in table["n"]],
        "direction": table["direction"],
        "impl": table["impl"], "mode": table["mode"],
        "median_ms": table["median_s"] * 1e3, "iqr_ms": table["iqr_s"] * 1e3,
        "ratio_to_best": table["ratio_to_best"], "ratio_range": spread, "limit_pct": fraction * 100,
        "limit": limit, "gbps": table["gbps"],
        "roofline_pct": table["roofline_fraction"] * 100, "compile_s": table["compile_s"],
        "peak_mib": table["peak_memory_bytes"] / 2**20, "status": table["status"].fillna(""),
        "error": (table["error_type"].fillna("") + ": " + table["error_message"].fillna("")).str.strip(": "),
    }).reset_index(drop=True)


def unstable(bench: pd.DataFrame) -> pd.Series:
    """Per row: whether its timing stayed disturbed after its group was re-timed (never for an untimed row)."""
    return ~_column(bench, "stable", True).fillna(True).astype(bool)


def unstable_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """The rows whose timing stayed disturbed after their group was re-timed, with the reason."""
    unstable_ = bench[unstable(bench)]
    return pd.DataFrame({
        "device": unstable_["device"], "dtype": unstable_["dtype"], "n": [size_label(n) for n in unstable_["n"]],
        "direction": unstable_["direction"], "impl": unstable_["impl"], "mode": unstable_["mode"],
        "median_ms": unstable_["median_s"] * 1e3, "why": _column(unstable_, "stability_note", ""),
    }).reset_index(drop=True)


def self_check_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """The configurations timed by their framework's own timer too: both medians and their ratio."""
    checked = bench[_column(bench, "own_timer_s", np.nan).notna()].sort_values(["device", "dtype", "n", "impl"])
    return pd.DataFrame({
        "device": checked["device"], "dtype": checked["dtype"], "n": [size_label(n) for n in checked["n"]],
        "impl": checked["impl"], "mode": checked["mode"], "direction": checked["direction"],
        "harness_ms": checked["median_s"] * 1e3, "own_timer": _column(checked, "own_timer", ""),
        "own_timer_ms": _column(checked, "own_timer_s", np.nan) * 1e3,
        "ratio": checked["median_s"] / _column(checked, "own_timer_s", np.nan),
        "stable": _column(checked, "stable", True).fillna(True).astype(bool),
    }).reset_index(drop=True)


def framework_versions(conformance: pd.DataFrame) -> dict[str, list[str]]:
    """The implementations that ran under several framework versions (a merged version matrix), with them."""
    if "framework_version" not in conformance.columns or conformance.empty:
        return {}
    found = conformance.groupby("impl")["framework_version"].unique()
    return {str(impl): sorted(map(str, versions)) for impl, versions in found.items() if len(versions) > 1}


def versioned(conformance: pd.DataFrame) -> pd.DataFrame:
    """Where one implementation ran under several framework versions (a merged version matrix), name each
    version in `impl` ("jax.logits @ 0.9.2"), so tables keep them apart."""
    several = set(framework_versions(conformance))
    if not several:
        return conformance
    relabel = conformance["impl"].isin(several)
    out = conformance.copy()
    out.loc[relabel, "impl"] = out.loc[relabel, "impl"] + " @ " + out.loc[relabel, "framework_version"].astype(str)
    return out


def version_changes(conformance: pd.DataFrame) -> pd.DataFrame:
    """The rows (same implementation, case, dtype, reduction, quantity, check, mode) whose status or worst ULP error
    differs between framework versions: one column of status and one of ULP error per version."""
    if "framework_version" not in conformance.columns:
        return pd.DataFrame()
    several = conformance.groupby("row_id")["framework_version"].transform("nunique") > 1
    rows = conformance[several]
    if rows.empty:
        return pd.DataFrame()
    keys = ["impl", "case", "dtype", "device", "reduction", "quantity", "check", "mode"]
    first = rows.groupby([*keys, "framework_version"], dropna=False)[["status", "max_ulp_error"]].first()
    status = first["status"].unstack("framework_version")
    ulp = first["max_ulp_error"].unstack("framework_version").reindex(status.index)
    lowest, highest = ulp.min(axis=1).to_numpy(dtype=float), ulp.max(axis=1).to_numpy(dtype=float)
    same_ulp = np.isclose(lowest, highest, rtol=1e-9, equal_nan=True) & (ulp.isna().sum(axis=1) == 0).to_numpy()
    same_ulp |= ulp.isna().all(axis=1).to_numpy()
    differs = (status.nunique(axis=1) > 1).to_numpy() | ~same_ulp
    table = status[differs].add_prefix("status ").join(ulp[differs].add_prefix("ulp "))
    return table.reset_index()


_PROFILE_COLUMNS = ["framework", "workers", "import_s", "devices_s", "compute_s", "compiler", "judge_s", "journal_s",
                    "wall_s", "cpu_s", "peak_mib"]


def _compiler(stats: dict[str, Any]) -> str:
    """A framework's compile counters in words: programs (from its cache), seconds compiling and lowering."""
    if not stats:
        return ""
    words = [f"{stats.get('programs', 0)} programs" + (f" ({stats['cached']} from its cache)" if "cached" in stats
                                                        else "")]
    words += [f"{stats[key]:g} s {what}" for key, what in (("compile_s", "compiling"), ("lower_s", "lowering"))
              if key in stats]
    return ", ".join(words)


def profile_table(profile: dict[str, Any]) -> pd.DataFrame:
    """One row per framework of an audit's profile: its workers, and the seconds of each phase (compute by mode,
    `batch` for the batch check), summed over its workers; `compiler` what the framework says it compiled (part
    of compute); `wall_s` is the workers' lifetimes, `cpu_s` their CPU."""
    rows = []
    for name, phases in sorted(profile.get("frameworks", {}).items()):
        by_mode = sorted(phases.get("compute_s", {}).items(), key=lambda item: -item[1])
        rows.append({**{column: phases.get(column) for column in _PROFILE_COLUMNS[1:]}, "framework": name,
                     "compute_s": ", ".join(f"{mode} {seconds:g}" for mode, seconds in by_mode),
                     "compiler": _compiler(phases.get("compiler", {}))})
    return pd.DataFrame(rows, columns=_PROFILE_COLUMNS)


def profile_lines(profile: dict[str, Any], wall: Any, jobs: Any) -> list[str]:
    """The runner's own process and the references, in words (for under the table)."""
    main, refs = profile.get("main", {}), profile.get("references", {})
    busy = sum(p.get("cpu_s", 0.0) for p in profile.get("frameworks", {}).values()) + main.get("cpu_s", 0.0)
    lines = [f"- this process: setup {main.get('setup_s', 0):g} s (cases, environment, run folder), plan "
             f"{main.get('plan_s', 0):g} s, references {main.get('references_s', 0):g} s, judging "
             f"{main.get('judge_s', 0):g} s, journal {main.get('journal_s', 0):g} s, waiting for workers "
             f"{main.get('waiting_s', 0):g} s, consolidation {main.get('consolidate_s', 0):g} s, findings "
             f"{main.get('findings_s', 0):g} s; CPU "
             f"{main.get('cpu_s', 0):g} s",
             f"- references: {refs.get('computed', 0)} computed ({refs.get('slow_elements', 0)} elements in mpmath), "
             f"{refs.get('cached', 0)} from the cache, {refs.get('seconds', 0):g} s"]
    if isinstance(wall, int | float) and wall > 0 and isinstance(jobs, int):
        lines.append(f"- CPU seconds of every process together: {busy:.1f} in {wall:g} s of wall time with {jobs} "
                     f"workers at once ({busy / wall:.2f} CPUs busy on average; a worker's count includes the "
                     "compilers it ran and waited for, such as Inductor's C++ builds)")
    return lines
