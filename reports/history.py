"""History: every run under a folder in one DataFrame, and the trend of accuracy and speed per implementation
across runs and framework versions (history.md and history.html in that folder)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store.folder import RunStore
from harness.verdict.tolerance import ALARMS
from reports.html import html_table, page, png, pyplot
from reports.load import RunReadError, load_run
from reports.markdown import markdown_table
from reports.summary import finding_rows

__all__ = ["load_history", "render_history_markdown", "write_history"]

_ACCURACY_KEYS = ["impl", "dtype", "device", "mode", "framework_version"]
_SPEED_COLUMNS = ["impl", "mode", "direction", "device", "dtype", "n", "framework_version", "median_s", "iqr_s",
                  "ratio_to_best", "gbps", "compile_s"]


def load_history(root: str | Path = "runs") -> pd.DataFrame:
    """One row per (run, implementation, dtype, device, mode, framework version) of accuracy (`kind` "accuracy":
    rows, passes, alarm rows, worst finite ULP error); one per (run, implementation, framework version) of its
    distinct findings (`kind` "findings"; NaN for a run made before findings existed, whose `alarm_rows` stand
    in); and one per bench row (`kind` "speed"); each with the run's id, creation time and machine fingerprint.
    Folders that are not readable runs are skipped and listed in `frame.attrs["skipped"]`."""
    base = Path(root)
    if not base.is_dir():
        raise RunReadError(f"{str(base)!r} is not a folder of runs; pass the folder that holds run folders "
                           "(default: runs)")
    parts: list[pd.DataFrame] = []
    skipped: list[str] = []
    stores: list[tuple[RunStore, dict[str, Any]]] = []
    for meta_file in sorted(base.rglob("meta.json")):
        try:
            store = RunStore(meta_file.parent)
            stores.append((store, store.read_meta()))
        except RunReadError as exc:
            skipped.append(str(exc))
    # runs with results here; a merged run of them is skipped before its tables are read
    present = {meta.get("run_id") for store, meta in stores if store.has_conformance() or store.has_bench()}
    runs = []
    for store, meta in stores:
        sources = {source.get("run_id") for source in meta.get("sources", [])}
        if meta.get("kind") == "merged" and sources <= present:  # its rows are here already, by source
            skipped.append(f"{str(store.path)!r} merges runs that are here too (counted once, from their folders)")
            continue
        try:
            runs.append(load_run(store.path))
        except RunReadError as exc:
            skipped.append(str(exc))
    for run in runs:
        common = {"run_id": run.meta.get("run_id", run.path.name), "run_path": str(run.path),
                  "created": pd.to_datetime(str(run.meta.get("created", "")), utc=True, errors="coerce"),
                  "fingerprint": run.meta.get("fingerprint", "")}
        if run.conformance is not None and not run.conformance.empty:
            table = run.conformance.copy()
            table["framework_version"] = table.get("framework_version", pd.Series("", index=table.index)).fillna("")
            finite = table["max_ulp_error"].where(table["max_ulp_error"].abs() != float("inf"))
            grouped = table.assign(passed=table["status"] == "pass", alarm=table["status"].isin(ALARMS),
                                   finite_ulp=finite).groupby(_ACCURACY_KEYS, dropna=False)
            accuracy = grouped.agg(rows=("status", "size"), passed=("passed", "sum"), alarm_rows=("alarm", "sum"),
                                   worst_ulp=("finite_ulp", "max")).reset_index()
            accuracy["pass_fraction"] = accuracy["passed"] / accuracy["rows"]
            parts.append(accuracy.assign(kind="accuracy", **common))
            parts.append(_finding_counts(table, run.findings).assign(kind="findings", **common))
        if run.bench is not None and not run.bench.empty:
            speed = run.bench[[c for c in _SPEED_COLUMNS if c in run.bench.columns]]
            parts.append(speed[speed["median_s"].notna()].assign(kind="speed", **common))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["kind", "run_id", "created"])
    frame = frame.sort_values(["created", "run_id"], kind="stable").reset_index(drop=True)
    frame.attrs["skipped"] = skipped
    return frame


def _finding_counts(table: pd.DataFrame, findings: pd.DataFrame | None) -> pd.DataFrame:
    """Per implementation and framework version: its distinct findings (NaN for a run made before findings
    existed) and its alarm rows."""
    keys = ["impl", "framework_version"]
    counts = table.assign(alarm=table["status"].isin(ALARMS)).groupby(keys, dropna=False).agg(
        alarm_rows=("alarm", "sum")).reset_index()
    if findings is None:
        return counts.assign(findings=float("nan"))
    distinct = finding_rows(findings, table, keys).groupby(keys, dropna=False)["finding_id"].nunique()
    return counts.merge(distinct.rename("findings").reset_index(), on=keys, how="left").fillna({"findings": 0})


def _findings_trend(history: pd.DataFrame) -> pd.DataFrame:
    """Distinct findings per implementation (and framework version) and run (alarm rows where a run has no
    findings)."""
    counted = history[history["kind"] == "findings"]
    if counted.empty:
        return pd.DataFrame()
    labelled = counted.assign(run=_label(counted), count=counted["findings"].fillna(counted["alarm_rows"]),
                              implementation=counted["impl"] + " " + counted["framework_version"].astype(str))
    return labelled.pivot_table(index="implementation", columns="run", values="count", aggfunc="sum").reset_index()


def _label(frame: pd.DataFrame) -> pd.Series:
    """A column per run: when it was made, its id's tail and the machine, so columns sort in time."""
    created = frame["created"].dt.strftime("%Y-%m-%d %H:%M:%S").fillna("?")
    return created + " " + frame["run_id"].astype(str).str[-6:]


def _accuracy_trend(history: pd.DataFrame) -> pd.DataFrame:
    accuracy = history[history["kind"] == "accuracy"]
    if accuracy.empty:
        return pd.DataFrame()
    labelled = accuracy.assign(run=_label(accuracy),
                               implementation=accuracy["impl"] + " " + accuracy["framework_version"].astype(str))
    return labelled.pivot_table(index=["implementation", "dtype"], columns="run", values="pass_fraction",
                                aggfunc="mean").reset_index()


def _speed_trend(history: pd.DataFrame) -> pd.DataFrame:
    speed = history[history["kind"] == "speed"]
    if speed.empty:
        return pd.DataFrame()
    largest = speed[speed["n"] == speed["n"].max()]
    labelled = largest.assign(run=_label(largest),
                              implementation=largest["impl"] + " [" + largest["mode"] + "] "
                              + largest["framework_version"].astype(str))
    return labelled.pivot_table(index=["implementation", "direction", "dtype"], columns="run", values="median_s",
                                aggfunc="median").reset_index()


def render_history_markdown(history: pd.DataFrame, accuracy: pd.DataFrame | None = None,
                            speed: pd.DataFrame | None = None) -> str:
    """history.md's text; `accuracy` and `speed`: the trends, when already computed."""
    accuracy = _accuracy_trend(history) if accuracy is None else accuracy
    speed = _speed_trend(history) if speed is None else speed
    runs = history["run_id"].nunique() if not history.empty else 0
    lines = [f"# bce-harness history: {runs} runs", ""]
    lines += [f"- skipped: {reason}" for reason in history.attrs.get("skipped", [])]
    lines += ["", "## Findings: distinct problems per implementation (and framework version) and run", "",
              "Runs made before findings existed count their alarm rows instead.", ""]
    lines.append(markdown_table(_findings_trend(history)))
    lines += ["", "## Accuracy: fraction of rows that pass, per implementation (and framework version) and run", ""]
    lines.append(markdown_table(accuracy))
    lines += ["## Speed: median seconds per call at the largest size, per configuration and run", ""]
    lines.append(markdown_table(speed))
    return "\n".join(lines) + "\n"


def _trend_plot(table: pd.DataFrame, keys: list[str], ylabel: str, log: bool) -> str:
    plt = pyplot()
    if table.empty:
        return "<p class='note'>nothing recorded</p>"
    runs = [c for c in table.columns if c not in keys]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    for row in table.itertuples(index=False):
        values = [v for c, v in zip(table.columns, row, strict=True) if c in runs]
        axis.plot(range(len(runs)), values, marker="o", label=" ".join(str(getattr(row, k)) for k in keys))
    axis.set_xticks(range(len(runs)), runs, rotation=30, ha="right", fontsize=7)
    axis.set_ylabel(ylabel)
    if log:
        axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    return png(figure)


def write_history(root: str | Path = "runs", history: pd.DataFrame | None = None) -> list[Path]:
    """history.md and history.html in `root` (`history`: what `load_history(root)` returned, if already read)."""
    history = load_history(root) if history is None else history
    base = Path(root)
    accuracy, speed = _accuracy_trend(history), _speed_trend(history)
    markdown = base / "history.md"
    markdown.write_text(render_history_markdown(history, accuracy, speed), encoding="utf-8")
    body = [f"<h1>bce-harness history: {history['run_id'].nunique() if not history.empty else 0} runs</h1>"]
    body += [f"<p class='note'>skipped: {escape(reason)}</p>" for reason in history.attrs.get("skipped", [])]
    findings = _findings_trend(history)
    body += ["<h2>Findings</h2>", "<p class='note'>Distinct problems per implementation and run (runs made before "
             "findings existed: their alarm rows).</p>", html_table(findings, ("implementation",))]
    body += ["<h2>Accuracy</h2>", _trend_plot(accuracy, ["implementation", "dtype"], "fraction of rows that pass",
                                               log=False), html_table(accuracy, ("implementation", "dtype")),
             "<h2>Speed</h2>", _trend_plot(speed, ["implementation", "direction", "dtype"],
                                           "median seconds per call", log=True),
             html_table(speed, ("implementation", "direction", "dtype"))]
    page_file = base / "history.html"
    page_file.write_text(page("bce-harness history", "".join(body)), encoding="utf-8")
    return [markdown, page_file]
