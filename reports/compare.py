"""Compare two runs: did anything get less accurate or slower?

Findings (both runs have them, matched by `finding_id`): a finding only in the new run is new (a new alarm
finding is a regression), one only in the base run is fixed, one in both whose implementations, dtypes,
reductions, modes or checks differ changed in scope. Runs made before findings existed are compared by rows.

Accuracy (both runs have conformance rows, matched by `row_id`): a regression is a row that was `pass` and is
not (except `unavailable`: a framework missing on one side is listed, not judged), a row whose `max_ulp_error`
grew beyond what rounding noise explains (more than doubled and by more than the pass tolerance of 4 ULP), or
a new `error`, `crashed` or `timeout`.

Speed (both runs have bench rows, matched by `row_id`): the samples are the per-sweep medians of each
configuration (one per interleaved sweep, recovered from the rounds in `bench.json`); a bench run times each
framework in several worker processes (three by default) that take the sweeps in turn, so the samples hold the
differences between processes too (the same code can be 30–50 % slower in one process than in the next, for the
whole of its life).
A run timed in one process per framework (`--processes 1`, or made before processes were recorded) gets a note:
its process's luck is not in its samples. A configuration is slower
when two things hold, each by a one-sided exact Mann–Whitney U test with the Holm–Bonferroni correction over all
compared configurations (family-wise α = 0.01) and a minimum effect (default 10 %) on the median:
- its time grew (absolute), and
- its time relative to the others of its group (the geometric mean of the same device, dtype, size and
  direction, in the same sweep) grew.
On a shared or virtual machine the whole of a run can be 10–50 % slower than the next (measured: A/A pairs of
this machine); the relative test sees through that, and the absolute one keeps a faster neighbour from making
a configuration look slower. A configuration alone in its group is judged on absolute time (a note says so).
Faster is the same, the other way round, reported but never a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import BadInput
from harness.store.folder import RunStore
from harness.store.schema import bench_row_id
from harness.verdict.tolerance import PASS_ULP
from reports.load import Run, load_run
from reports.markdown import markdown_table

__all__ = ["ALPHA", "MIN_EFFECT", "Comparison", "compare_runs", "render_comparison", "sweep_medians"]

ALPHA = 0.01  # family-wise, over all compared speed configurations (Holm–Bonferroni), for each of the two tests
MIN_EFFECT = 0.10  # a median at least 10 % slower
_NOT_JUDGED = ("unavailable",)
_NEW_ERRORS = ("error", "crashed", "timeout")
_ACCURACY_KEYS = ["row_id", "impl", "case", "dtype", "device", "reduction", "quantity", "check", "mode", "status",
                  "max_ulp_error"]
_SPEED_KEYS = ["row_id", "impl", "mode", "direction", "device", "dtype", "n", "sweeps", "median_s"]


@dataclass
class Comparison:
    """What changed from `base` to `new`. Every frame has a `verdict` column where it judges."""

    base: Path
    new: Path
    accuracy: pd.DataFrame  # rows whose status or error changed, with verdict "regression" / "improvement" / …
    speed: pd.DataFrame  # every compared configuration, with p-values, ratio and verdict
    notes: list[str] = field(default_factory=list)
    min_effect: float = MIN_EFFECT
    alpha: float = ALPHA
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)  # new, fixed and changed findings, by finding_id
    findings_compared: bool = False  # both runs have findings

    @property
    def regressions(self) -> int:
        """Rows that got worse, slower configurations, and new alarm findings."""
        new_alarms = ((self.findings.get("verdict", pd.Series(dtype=str)) == "new")
                      & (self.findings.get("status", pd.Series(dtype=str)) != "deviation"))
        return int((self.accuracy.get("verdict", pd.Series(dtype=str)) == "regression").sum()
                   + (self.speed.get("verdict", pd.Series(dtype=str)) == "slower").sum() + new_alarms.sum())


def _missing(frame: pd.DataFrame, needed: list[str]) -> list[str]:
    return [column for column in needed if column not in frame.columns]


def _accuracy(base: pd.DataFrame, new: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    for name, frame in (("base", base), ("new", new)):
        lacking = _missing(frame, _ACCURACY_KEYS)
        if lacking:
            notes.append(f"accuracy not compared: the {name} run's conformance table lacks {', '.join(lacking)}")
            return pd.DataFrame()
    joined = base[_ACCURACY_KEYS].merge(new[["row_id", "status", "max_ulp_error"]], on="row_id", how="outer",
                                        suffixes=("_base", "_new"), indicator=True)
    only_base, only_new = (joined["_merge"] == "left_only").sum(), (joined["_merge"] == "right_only").sum()
    if only_base or only_new:
        notes.append(f"rows in only one run (not compared): {only_base} only in base, {only_new} only in new")
    both = joined[joined["_merge"] == "both"].drop(columns="_merge")
    was, now = both["status_base"], both["status_new"]
    ulp_base, ulp_new = both["max_ulp_error_base"], both["max_ulp_error_new"]
    judged = ~was.isin(_NOT_JUDGED) & ~now.isin(_NOT_JUDGED)
    worse_ulp = (ulp_new > np.maximum(2 * ulp_base, ulp_base + PASS_ULP)) & (ulp_new > PASS_ULP)
    lost_pass = (was == "pass") & (now != "pass")
    new_error = now.isin(_NEW_ERRORS) & ~was.isin(_NEW_ERRORS)
    regression = judged & (lost_pass | new_error | (worse_ulp.fillna(False) & (now != "pass")))
    gained_pass = judged & (was != "pass") & (now == "pass")
    unavailable = (was.isin(_NOT_JUDGED) != now.isin(_NOT_JUDGED))
    if unavailable.any():
        notes.append(f"{int(unavailable.sum())} rows unavailable on one side only (a framework missing there)")
    verdict = np.select([regression, gained_pass], ["regression", "improvement"], default="")
    changed = both.assign(verdict=verdict)
    changed = changed[(changed["verdict"] != "") | ((was != now) & judged)]
    changed.loc[changed["verdict"] == "", "verdict"] = "changed"
    return changed.reset_index(drop=True)


_SCOPE = ("impls", "dtypes", "reductions", "modes", "checks")


def _findings(base: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Findings by `finding_id`: new (only in the new run), fixed (only in the base), changed in scope (the
    implementations, dtypes, reductions, modes or checks it holds in differ)."""
    joined = base.merge(new, on="finding_id", how="outer", suffixes=("_base", "_new"), indicator=True)
    rows = []
    for finding in joined.to_dict(orient="records"):
        side = "new" if finding["_merge"] == "right_only" else "base"
        record = {"finding_id": finding["finding_id"], "status": finding[f"status_{side}"],
                  "title": finding[f"title_{side}"], "rows_base": finding.get("rows_base"),
                  "rows_new": finding.get("rows_new")}
        if finding["_merge"] != "both":
            rows.append({**record, "verdict": "new" if side == "new" else "fixed",
                         "scope": ", ".join(finding[f"impls_{side}"])})
            continue
        changes = [f"{name}: {', '.join(sorted(set(finding[f'{name}_base']) - set(finding[f'{name}_new'])))} gone, "
                   f"{', '.join(sorted(set(finding[f'{name}_new']) - set(finding[f'{name}_base'])))} added"
                   for name in _SCOPE if list(finding[f"{name}_base"]) != list(finding[f"{name}_new"])]
        if changes:
            rows.append({**record, "verdict": "changed in scope", "scope": "; ".join(changes)})
    order = {"new": 0, "changed in scope": 1, "fixed": 2}
    frame = pd.DataFrame(rows, columns=["verdict", "finding_id", "status", "title", "scope", "rows_base", "rows_new"])
    return frame.sort_values("verdict", key=lambda v: v.map(order), kind="stable").reset_index(drop=True)


def sweep_medians(document: dict[str, Any], frame: pd.DataFrame) -> dict[str, list[float]]:
    """Per bench row: the median of each sweep's block of rounds, from pytest-benchmark's JSON (the rounds are
    stored sweep after sweep, the same number per sweep)."""
    out: dict[str, list[float]] = {}
    sweeps = dict(zip(frame["row_id"], frame["sweeps"], strict=True))
    for entry in document.get("benchmarks", []):
        params = entry.get("params") or {}
        if not {"impl", "mode", "direction", "device", "dtype", "n"} <= set(params):
            continue  # a bandwidth read, or a benchmark of someone else's
        key = bench_row_id(*(str(params[k]) for k in ("impl", "mode", "direction", "device", "dtype", "n")))
        data, count = entry["stats"]["data"], int(sweeps.get(key, 0))
        if count >= 1 and len(data) % count == 0 and data:
            per = len(data) // count
            out[key] = [float(np.median(data[i * per:(i + 1) * per])) for i in range(count)]
    return out


def _holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values."""
    order = np.argsort(pvalues)
    adjusted = np.empty_like(pvalues)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def _relative(samples: dict[str, list[float]], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each configuration's per-sweep medians over the geometric mean of its group's (same device, dtype, size
    and direction) in the same sweep: what is left when the whole machine ran faster or slower for a while."""
    out: dict[str, np.ndarray] = {}
    for _, group in frame.groupby(["device", "dtype", "n", "direction"]):
        ids = [str(i) for i in group["row_id"] if str(i) in samples]
        sweeps = min((len(samples[i]) for i in ids), default=0)
        if len(ids) < 2 or sweeps < 2:
            continue
        logs = np.log(np.array([samples[i][:sweeps] for i in ids]))
        for i, row in zip(ids, np.exp(logs - logs.mean(axis=0)), strict=True):
            out[i] = row
    return out


def _processes(frame: pd.DataFrame) -> int:
    """How many worker processes per framework timed a bench table (1 where the table does not say)."""
    counts = pd.to_numeric(frame.get("processes", pd.Series(1, index=frame.index)), errors="coerce")
    return int(counts.fillna(1).min()) if not counts.empty else 1  # a merged shard made before: 1


def _one_sided(after: Any, before: Any) -> tuple[float, float]:
    """Mann–Whitney U p-values that `after` is larger, and smaller, than `before` (exact for few sweeps)."""
    from scipy.stats import mannwhitneyu

    method = "exact" if max(len(before), len(after)) <= 30 else "asymptotic"
    return (float(mannwhitneyu(after, before, alternative="greater", method=method).pvalue),
            float(mannwhitneyu(after, before, alternative="less", method=method).pvalue))


def _speed(base: Run, new: Run, min_effect: float, alpha: float, notes: list[str]) -> pd.DataFrame:
    assert base.bench is not None and new.bench is not None
    for name, frame in (("base", base.bench), ("new", new.bench)):
        lacking = _missing(frame, _SPEED_KEYS)
        if lacking:
            notes.append(f"speed not compared: the {name} run's bench table lacks {', '.join(lacking)}")
            return pd.DataFrame()
    base_samples = sweep_medians(RunStore(base.path).bench_document(), base.bench)
    new_samples = sweep_medians(RunStore(new.path).bench_document(), new.bench)
    base_relative, new_relative = _relative(base_samples, base.bench), _relative(new_samples, new.bench)
    rows = []
    joined = base.bench[_SPEED_KEYS].merge(new.bench[["row_id", "median_s"]], on="row_id", suffixes=("_base", "_new"))
    timed_in_both = int((joined["median_s_base"].notna() & joined["median_s_new"].notna()).sum())
    for row in joined.itertuples(index=False):
        key = str(row.row_id)
        before, after = base_samples.get(key), new_samples.get(key)
        if not before or not after or len(before) < 2 or len(after) < 2:
            continue
        slower, faster = _one_sided(after, before)
        entry = {"row_id": key, "impl": row.impl, "mode": row.mode, "direction": row.direction,
                 "device": row.device, "dtype": row.dtype, "n": row.n, "median_s_base": float(np.median(before)),
                 "median_s_new": float(np.median(after)), "samples": f"{len(before)}+{len(after)}",
                 "p_slower": slower, "p_faster": faster, "relative_ratio": np.nan, "p_rel_slower": 1.0,
                 "p_rel_faster": 1.0}
        if key in base_relative and key in new_relative:
            entry["relative_ratio"] = float(np.median(new_relative[key]) / np.median(base_relative[key]))
            entry["p_rel_slower"], entry["p_rel_faster"] = _one_sided(new_relative[key], base_relative[key])
        rows.append(entry)
    if timed_in_both > len(rows):
        notes.append(f"{timed_in_both - len(rows)} configurations timed in both runs were not compared: their "
                     "rounds in bench.json are missing or do not split into equal per-sweep blocks")
    if not rows:
        notes.append("speed not compared: no configuration was timed in both runs")
        return pd.DataFrame()
    single = [name for name, frame in (("base", base.bench), ("new", new.bench)) if _processes(frame) < 2]
    if single:
        notes.append(f"the {' and '.join(single)} run timed each framework in one process, so the difference "
                     "between one process and the next (up to 50 % for the same code) is not in its samples and "
                     "can look like a regression; bench with several processes (--processes, default 3)")
    speed = pd.DataFrame(rows)
    speed["ratio"] = speed["median_s_new"] / speed["median_s_base"]
    for column in ("p_slower", "p_faster", "p_rel_slower", "p_rel_faster"):
        speed[f"{column}_holm"] = _holm(speed[column].to_numpy())
    alone = speed["relative_ratio"].isna()
    if alone.any():
        notes.append(f"{int(alone.sum())} configurations are alone in their group: judged on absolute time only, "
                     "which the machine's drift can move")
    grew, shrank = 1 + min_effect, 1 / (1 + min_effect)
    is_slower = ((speed["p_slower_holm"] < alpha) & (speed["ratio"] >= grew)
              & (alone | ((speed["p_rel_slower_holm"] < alpha) & (speed["relative_ratio"] >= grew))))
    is_faster = ((speed["p_faster_holm"] < alpha) & (speed["ratio"] <= shrank)
              & (alone | ((speed["p_rel_faster_holm"] < alpha) & (speed["relative_ratio"] <= shrank))))
    speed["verdict"] = np.select([is_slower, is_faster], ["slower", "faster"], default="")
    return speed.sort_values("ratio", ascending=False).reset_index(drop=True)


def compare_runs(base_dir: str | Path, new_dir: str | Path, min_effect: float = MIN_EFFECT,
                 alpha: float = ALPHA) -> Comparison:
    """Compare the run in `new_dir` with the one in `base_dir` (accuracy and speed, whichever both have)."""
    if not 0 <= min_effect < 10:
        raise BadInput(f"--min-effect {min_effect}: give a fraction such as 0.1 (10 %)")
    base, new = load_run(base_dir), load_run(new_dir)
    notes: list[str] = []
    accuracy = pd.DataFrame()
    if base.conformance is not None and new.conformance is not None:
        accuracy = _accuracy(base.conformance, new.conformance, notes)
    elif (base.conformance is None) != (new.conformance is None):
        notes.append("accuracy not compared: only one of the runs has an audit")
    findings = pd.DataFrame()
    if base.findings is not None and new.findings is not None:
        findings = _findings(base.findings, new.findings)
    elif base.conformance is not None and new.conformance is not None:
        notes.append("findings not compared: a run was made before findings existed (rows are compared)")
    speed = pd.DataFrame()
    if base.bench is not None and new.bench is not None:
        speed = _speed(base, new, min_effect, alpha, notes)
    elif (base.bench is None) != (new.bench is None):
        notes.append("speed not compared: only one of the runs has a benchmark")
    loads = [((run.meta.get("bench") or {}).get("load_average") or {}) for run in (base, new)]
    busiest = [max((float(v) for v in load.values() if isinstance(v, int | float)), default=math.nan)
               for load in loads]
    if abs(busiest[0] - busiest[1]) > 1.0:  # NaN (not recorded) compares False
        notes.append(f"the machine was busier during one run (1-minute load average up to {busiest[0]} in base, "
                     f"{busiest[1]} in new): speed differences may be the load's")
    if base.meta.get("fingerprint") and base.meta.get("fingerprint") != new.meta.get("fingerprint"):
        notes.append("the runs come from different machines (fingerprints differ): speed differences may be the "
                     "machines'")
    return Comparison(base.path, new.path, accuracy, speed, notes, min_effect, alpha, findings,
                      base.findings is not None and new.findings is not None)


def _columns(frame: pd.DataFrame, columns: list[str]) -> str:
    return markdown_table(frame[[c for c in columns if c in frame.columns]])


def render_comparison(comparison: Comparison) -> str:
    """The comparison as Markdown (for a pull request or a CI log)."""
    accuracy, speed = comparison.accuracy, comparison.speed
    regressions = comparison.regressions
    lines = [f"# Comparison: {comparison.new} against {comparison.base}", "",
             f"**{regressions} regression{'s' if regressions != 1 else ''}**" if regressions else
             "**No regression.**", ""]
    lines += [f"- {note}" for note in comparison.notes]
    if comparison.findings_compared:
        lines += ["", "## Findings", ""]
        lines.append(_columns(comparison.findings, ["verdict", "status", "title", "scope", "rows_base", "rows_new",
                                                    "finding_id"]) if not comparison.findings.empty
                     else "No finding is new, fixed or changed in scope.")
    lines += ["", "## Accuracy", ""]
    if accuracy.empty:
        lines.append("No row changed status.")
    else:
        for verdict in ("regression", "improvement", "changed"):
            part = accuracy[accuracy["verdict"] == verdict]
            if not part.empty:
                lines += [f"### {verdict} ({len(part)})", "",
                          _columns(part, ["impl", "case", "dtype", "reduction", "quantity", "check", "mode",
                                                 "status_base", "status_new", "max_ulp_error_base",
                                                 "max_ulp_error_new"]), ""]
    lines += ["", "## Speed", ""]
    if speed.empty:
        lines.append("No configuration timed in both runs.")
    else:
        lines.append(f"Slower or faster: one-sided exact Mann–Whitney U over the per-sweep medians, Holm-corrected "
                     f"over {len(speed)} configurations (α = {comparison.alpha:g}), and a change of at least "
                     f"{comparison.min_effect:.0%} in the median — both in absolute time and relative to the "
                     "configuration's group in the same sweeps (`relative_ratio`).")
        lines.append("")
        shown = speed.assign(ratio=speed["ratio"].map(lambda r: f"{r:.3f}" if math.isfinite(r) else ""))
        lines.append(_columns(shown, ["verdict", "impl", "mode", "direction", "device", "dtype", "n",
                                             "median_s_base", "median_s_new", "ratio", "relative_ratio",
                                             "p_slower_holm", "p_rel_slower_holm", "samples"]))
    return "\n".join(lines) + "\n"
