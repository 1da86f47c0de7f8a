"""`report.html`: one self-contained page per run (opens offline; plots embedded as PNG data), for people to look
at rather than read. Every string from a run (case names, messages, versions) is escaped."""

from __future__ import annotations

import base64
import io
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import DTYPES
from harness.verdict.tolerance import ALARMS, worst_status
from reports.load import Run, load_run
from reports.summary import (
    alarm_rows,
    bench_table,
    finding_matrix,
    finding_rows,
    findings_table,
    framework_versions,
    self_check_rows,
    size_label,
    status_matrix,
    unstable,
    unstable_rows,
    version_changes,
    versioned,
)

__all__ = ["STATUS_COLOURS", "html_table", "page", "png", "render_html", "write_html"]

STATUS_COLOURS = {
    "pass": "#2e9d4f", "inexact": "#9bcf6f", "deviation": "#e3c04b", "fail": "#d9412b", "nonfinite": "#8e1b6f",
    "error": "#e07b2a", "rejected": "#7aa6d6", "unsupported": "#c8c8c8", "unavailable": "#e8e8e8",
    "crashed": "#222222", "timeout": "#555555",
}
_MAX_ROWS = 500
_CARDS = 10  # the worst findings shown as cards, first on the page
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1280px;color:#1d1d1f;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:right;vertical-align:top}th{background:#f4f4f6}td.t,th.t{text-align:left}
td.s{color:#fff;font-weight:600;text-align:center}td.s a{color:#fff}code{font-size:12px;white-space:nowrap}
.legend span{display:inline-block;padding:1px 8px;margin:2px;color:#fff;border-radius:3px;font-size:12px}
img.plot{max-width:100%;border:1px solid #eee;margin:6px 0}.note{color:#555}.wide{overflow-x:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:10px;margin:10px 0}
.card{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:8px 10px;background:#fcfcfd}
.card h3{font-size:14px;margin:0 0 4px}.card p{margin:3px 0;font-size:12.5px}.rank{font-weight:700;margin-right:4px}
.card code{white-space:normal;word-break:break-all}
.bar{display:flex;height:8px;width:110px;margin-top:3px}.bar span{display:block;height:8px}
td.m{text-align:center;font-size:12px}td.m a{color:inherit}
"""
# Counts the plots that loaded, so a browser test (and a reader) can tell the page is whole.
_SCRIPT = """
window.addEventListener("load", function () {
  var plots = document.querySelectorAll("img.plot"), loaded = 0;
  plots.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded += 1; } });
  document.body.setAttribute("data-plots", String(plots.length));
  document.body.setAttribute("data-plots-loaded", String(loaded));
});
"""


def _cell(value: Any, nan: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return nan
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return escape(str(value))


def html_table(frame: pd.DataFrame, text_columns: tuple[str, ...] = (), nan_columns: tuple[str, ...] = (),
               html_columns: tuple[str, ...] = ()) -> str:
    """An HTML table; NaN is left blank, except in `nan_columns` (values, where NaN is what came out);
    `html_columns` hold markup this module made (their run strings escaped already)."""
    if frame.empty:
        return "<p class='note'>none</p>"
    head = "".join(f"<th class='{'t' if c in text_columns else ''}'>{escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f"<td class='{'t' if c in text_columns else ''}'>"
                        f"{v if c in html_columns else _cell(v, 'nan' if c in nan_columns else '')}</td>"
                        for c, v in zip(frame.columns, row, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(figure: Any) -> str:
    """A matplotlib figure as an embedded image."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img class='plot' alt='plot' src='data:image/png;base64,{data}'>"


def _anchor(*parts: str) -> str:
    return "d-" + "-".join("".join(ch if ch.isalnum() else "_" for ch in part) for part in parts)


def _matrix(dtypes: list[str], rows: list[str]) -> str:
    """An implementation × dtype table of ready rows, under the legend of status colours."""
    head = "<th class='t'>implementation</th>" + "".join(f"<th>{escape(d)}</th>" for d in dtypes)
    legend = "".join(f"<span style='background:{colour}'>{escape(status)}</span>"
                     for status, colour in STATUS_COLOURS.items())
    return (f"<p class='legend'>{legend}</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table>")


def _status_matrix(conformance: pd.DataFrame) -> str:
    """Implementation × dtype, each cell coloured by its worst status, with the worst finite ULP error; a cell with
    alarms links to them in the alarm list."""
    matrix = status_matrix(conformance)
    worst = conformance.groupby(["impl", "dtype"])["status"].agg(worst_status)
    dtypes = [d for d in DTYPES if d in set(matrix["dtype"])]
    rows = []
    for impl in sorted(set(matrix["impl"])):
        cells = [f"<td class='t'>{escape(impl)}</td>"]
        for dtype in dtypes:
            status = worst.get((impl, dtype), "")
            if not status:
                cells.append("<td></td>")
                continue
            found = matrix[(matrix["impl"] == impl) & (matrix["dtype"] == dtype)]["worst_ulp"]
            ulp = f" · {found.iloc[0]:.3g} ulp" if len(found) and pd.notna(found.iloc[0]) else ""
            label = escape(status) + ulp
            if status in ALARMS:
                label = f"<a href='#{_anchor(impl, dtype)}'>{label}</a>"
            cells.append(f"<td class='s' style='background:{STATUS_COLOURS.get(status, '#999')}'>{label}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _matrix(dtypes, rows)


def _card(finding: Any, run_dir: str) -> str:
    """One finding: rank, status, title, where it holds, why, the known issues and the reproducer."""
    colour = STATUS_COLOURS.get(finding.status, "#999")
    issues = ", ".join(f"<a href='{escape(url)}'>{escape(url.split('github.com/')[-1])}</a>"
                       for url in finding.known_issues) or "none known: new"
    return (f"<div class='card' id='f-{escape(finding.finding_id)}' style='border-left-color:{colour}'>"
            f"<h3><span class='rank'>{finding.rank}.</span>{escape(finding.title)}</h3>"
            f"<p><b>{escape(finding.status)}</b> · {escape(finding.kind)} · {escape(', '.join(finding.impls))} · "
            f"{escape(', '.join(finding.dtypes))} · <a href='#rows-{escape(finding.finding_id)}'>{finding.rows} rows"
            "</a></p>" + (f"<p>onset: {escape(finding.onset)}</p>" if getattr(finding, "onset", "") else "")
            + (f"<p>why: {escape(finding.why)}</p>" if finding.why else "")
            + f"<p>known issues: {issues}</p><p><code>python -m harness repro {escape(run_dir)} "
            f"{escape(finding.finding_id)}</code></p></div>")


def _findings(run: Run, findings: pd.DataFrame) -> str:
    """The worst problems as cards, then every finding in a table, each linked to its card and its rows."""
    run_dir = str(run.path)
    alarms = int((findings["status"] != "deviation").sum())
    head = (f"<p class='note'>{len(findings)} distinct problems: {alarms} alarms and {len(findings) - alarms} "
            "documented conventions, worst first (ordinary inputs before edges, meaningless results before lost "
            "digits).</p>")
    cards = "".join(_card(f, run_dir) for f in findings.head(_CARDS).itertuples(index=False))
    table = findings_table(findings)
    table["finding"] = [f"<a href='#{'f' if rank <= _CARDS else 'rows'}-{escape(fid)}'>{escape(title)}</a>"
                        for fid, title, rank in zip(table["id"], table["finding"], table["rank"], strict=True)]
    everything = html_table(table, ("status", "finding", "implementations", "dtypes", "known issues", "id"),
                            html_columns=("finding",))
    return head + f"<div class='cards'>{cards}</div><h3>All findings</h3>{everything}"


def _finding_matrix(conformance: pd.DataFrame, findings: pd.DataFrame) -> str:
    """Implementation × dtype: how many alarm findings and conventions touch each cell (coloured by the worst),
    with a bar of the share of its rows per status."""
    matrix = finding_matrix(conformance, findings)
    dtypes = [d for d in DTYPES if d in set(matrix["dtype"])]
    rows = []
    for impl in sorted(set(matrix["impl"])):
        cells = [f"<td class='t'>{escape(impl)}</td>"]
        for dtype in dtypes:
            found = matrix[(matrix["impl"] == impl) & (matrix["dtype"] == dtype)]
            if found.empty:
                cells.append("<td></td>")
                continue
            cell = found.iloc[0]
            bar = "".join(f"<span style='width:{100 * cell[status]:.1f}%;background:{colour}'></span>"
                          for status, colour in STATUS_COLOURS.items() if cell.get(status, 0) > 0)
            tint = STATUS_COLOURS.get(cell["worst"], "#999") if cell["alarms"] else "#ffffff"
            cells.append(f"<td class='m' style='background:{tint}22'><b>{cell['alarms']}</b> alarms · "
                         f"{cell['conventions']} conv.<div class='bar'>{bar}</div></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _matrix(dtypes, rows)


def _finding_rows(conformance: pd.DataFrame, findings: pd.DataFrame) -> str:
    """Each finding's rows (the first 50), under an anchor its card links to."""
    parts = []
    columns = ["status", "impl", "dtype", "case", "reduction", "quantity", "check", "mode", "row_id"]
    members = finding_rows(findings, conformance, columns)
    for (rank, fid, title), rows in members.groupby(["rank", "finding_id", "title"], sort=True):
        parts.append(f"<details id='rows-{escape(str(fid))}'><summary>{rank}. {escape(str(title))} ({len(rows)} "
                     f"rows)</summary>{html_table(rows[columns].head(50), tuple(columns))}</details>")
    return "".join(parts)


def _discrepancies(run: Run, conformance: pd.DataFrame) -> str:
    found = alarm_rows(conformance)
    parts = []
    if len(found) > _MAX_ROWS:
        parts.append(f"<p class='note'>The worst {_MAX_ROWS} of {len(found)}; all of them are in "
                     "conformance.parquet and report.md.</p>")
    found = found.head(_MAX_ROWS)
    for (impl, dtype), group in found.groupby(["impl", "dtype"], sort=True):
        shown = pd.DataFrame({
            "status": group["status"], "case": group["case"], "reduction": group["reduction"],
            "quantity": group["quantity"], "check": group["check"], "mode": group["mode"],
            "worst x": group["worst_x"], "worst y": group["worst_y"], "got": group["got"], "exact": group["expected"],
            "ulp": group["max_ulp_error"], "convention": group["deviation"],
            "error": group["error_type"].fillna("") + " " + group["error_message"].fillna(""),
            "reproduce": [f"python -m harness repro {run.path} {r}" for r in group["row_id"]],
        })
        parts.append(f"<h3 id='{_anchor(str(impl), str(dtype))}'>{escape(str(impl))} · {escape(str(dtype))}</h3>")
        parts.append(html_table(shown, ("status", "case", "reduction", "quantity", "check", "mode", "convention",
                                    "error", "reproduce"), nan_columns=("got", "exact")))
    return "".join(parts) if parts else "<p class='note'>No alarms.</p>"


def _heatmap(conformance: pd.DataFrame) -> str:
    """log10(1 + worst finite ULP error), implementation × case family (judged rows only)."""
    plt = pyplot()
    ulp = conformance["max_ulp_error"].where(np.isfinite(conformance["max_ulp_error"]))
    table = ulp.groupby([conformance["impl"], conformance["family"]]).max().unstack("family")
    if table.empty or table.isna().all().all():
        return "<p class='note'>No finite ULP errors to show.</p>"
    worst = table.to_numpy(dtype=float)
    values = np.log10(1 + worst)
    figure, axes = plt.subplots(figsize=(1.1 + 0.75 * values.shape[1], 0.9 + 0.32 * values.shape[0]))
    image = axes.imshow(np.ma.masked_invalid(values), cmap="magma_r", aspect="auto")
    axes.set_xticks(range(values.shape[1]), [str(c) for c in table.columns], rotation=45, ha="right")
    axes.set_yticks(range(values.shape[0]), [str(i) for i in table.index])
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            axes.text(j, i, f"{worst[i, j]:.2g}", ha="center", va="center", fontsize=7,
                      color="white" if value > values[np.isfinite(values)].max() / 2 else "black")
    figure.colorbar(image, ax=axes, label="log10(1 + worst ULP error)")
    axes.set_title("worst ULP error by implementation and case family")
    return png(figure)


def _speed_plots(bench: pd.DataFrame) -> str:
    plt = pyplot()
    timed = bench[bench["median_s"].notna()]
    if timed.empty:
        return "<p class='note'>Nothing was timed.</p>"
    parts = []
    for (device, dtype), group in timed.groupby(["device", "dtype"], sort=True):
        directions = sorted(set(group["direction"]))
        figure, axes = plt.subplots(1, len(directions), figsize=(6.2 * len(directions), 4.2), squeeze=False)
        for axis, direction in zip(axes[0], directions, strict=True):
            part = group[group["direction"] == direction]
            for (impl, mode), line in part.groupby(["impl", "mode"], sort=True):
                line = line.sort_values("n")
                axis.errorbar(line["n"], line["median_s"], yerr=line["iqr_s"] / 2, marker="o", ms=4, capsize=2,
                              label=f"{impl} [{mode}]")
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("elements")
            axis.set_ylabel("median seconds per call")
            axis.set_title(f"{device} {dtype} {direction}")
            axis.grid(True, which="both", alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        parts.append(png(figure))
    largest = timed[timed["n"] == timed["n"].max()].sort_values("ratio_to_best")
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 0.6 + 0.3 * len(largest)))
    labels = [f"{r.impl} [{r.mode}] {r.direction} {r.dtype}" for r in largest.itertuples()]
    positions = np.arange(len(largest))
    spread = np.vstack([largest["ratio_to_best"] - largest["ratio_low"],
                        largest["ratio_high"] - largest["ratio_to_best"]])
    left.barh(positions, largest["ratio_to_best"], xerr=spread, color="#4c78a8")
    left.set_yticks(positions, labels, fontsize=7)
    left.invert_yaxis()
    left.set_title(f"ratio to the fastest, n = {size_label(int(largest['n'].iloc[0]))}")
    fraction = largest["fraction_of_limit"] if "fraction_of_limit" in largest else largest["roofline_fraction"]
    middle.barh(positions, 100 * fraction, color="#72b7b2")
    middle.axvline(100, color="#444", lw=0.8)
    middle.set_yticks(positions, [])
    middle.invert_yaxis()
    middle.set_title("% of the limit (memory floor or speed-of-light kernel)" if "fraction_of_limit" in largest
                     else "roofline (% of the best read of the same bytes)")
    right.barh(positions, largest["compile_s"], color="#f58518")
    right.set_yticks(positions, [])
    right.invert_yaxis()
    right.set_title("first call (compile) seconds")
    parts.append(png(figure))
    return "".join(parts)


def _environment(meta: dict[str, Any]) -> str:
    cpu = meta.get("cpu", {})
    bench = meta.get("bench", {})
    threads = bench.get("threads", {})
    rows = [
        ("run id", meta.get("run_id", "")), ("created", meta.get("created", "")),
        ("complete", meta.get("complete", "")), ("git commit", meta.get("git_commit", "")),
        ("command", meta.get("command", "")), ("python", meta.get("python", "")),
        ("platform", meta.get("platform", "")), ("CPU", f"{cpu.get('model', '')} ({cpu.get('logical_cpus', '')} CPUs, "
                                                        f"flags {' '.join(cpu.get('flags', []))})"),
        ("GPU", ", ".join(f"{g.get('name', '')} (driver {g.get('driver', '')}, {g.get('memory', '')})"
                          for g in meta.get("gpus", []) if isinstance(g, dict)) or "none found"),
        ("machine fingerprint", meta.get("fingerprint", "")), ("flush-to-zero", meta.get("flush_to_zero", "")),
        ("environment variables", ", ".join(f"{k}={v}" for k, v in meta.get("environment_variables", {}).items())),
        ("bench threads", ", ".join(f"{name}: {info}" for name, info in threads.get("frameworks", {}).items())),
    ]
    rows += [(f"package {name}", version) for name, version in sorted(meta.get("packages", {}).items())]
    frame = pd.DataFrame(rows, columns=["what", "value"])
    return html_table(frame, ("what", "value"))


def render_html(run: Run) -> str:
    """The whole page: findings (cards, table, matrix), status matrix, ULP heat map, each finding's rows, the alarm
    rows, speed plots and tables, environment."""
    meta = run.meta
    title = f"bce-harness run {meta.get('run_id', run.path.name)}"
    sections = [f"<h1>{escape(title)}</h1>",
                f"<p class='note'>{escape(str(run.path))} · created {escape(str(meta.get('created', '')))}</p>"]
    if run.conformance is not None:
        several = framework_versions(run.conformance)
        if several:  # a merged version matrix: the same section as report.md's
            changes = version_changes(run.conformance)
            listed = ", ".join(f"{impl}: {', '.join(versions)}" for impl, versions in several.items())
            sections += ["<h2 id='versions'>What changed between framework versions</h2>",
                         f"<p class='note'>Versions compared: {escape(listed)}. Rows whose status or worst ULP error "
                         f"differs between versions ({len(changes)}):</p>",
                         html_table(changes, tuple(c for c in changes.columns if not c.startswith("ulp ")))
                         if not changes.empty else ""]
        conformance = versioned(run.conformance)
        if run.findings is not None:
            sections[2:2] = ["<h2 id='findings'>Findings</h2>", _findings(run, run.findings)]
            sections += ["<h2 id='matrix'>Findings by implementation and dtype</h2>",
                         "<p class='note'>Each cell: how many alarm findings and documented conventions its rows show "
                         "(tinted by the worst), and the share of its rows per status.</p>",
                         _finding_matrix(conformance, run.findings)]
        sections += ["<h2 id='status'>Accuracy: worst status by implementation and dtype</h2>",
                     "<p class='note'>Each cell: the worst status of its rows and the largest finite error in ULPs "
                     "of the dtype. A cell with alarms links to them below.</p>",
                     _status_matrix(conformance),
                     "<h2 id='heatmap'>ULP error by case family</h2>", _heatmap(conformance)]
        if run.findings is not None:
            sections += ["<h2 id='finding-rows'>The rows of each finding</h2>",
                         _finding_rows(conformance, run.findings)]
        sections += ["<h2 id='discrepancies'>Alarms</h2>", _discrepancies(run, conformance)]
    if run.bench is not None:
        table = bench_table(run.bench[~unstable(run.bench)])
        sections += ["<h2 id='speed'>Speed</h2>",
                     "<p class='note'>Median seconds per call (synced; bars: interquartile range), log–log; then, at "
                     "the largest size, the ratio to the fastest configuration in the same sweeps (bars: the quartiles "
                     "of the sweeps), the percentage of the limit (the larger of the memory floor and the "
                     "speed-of-light kernel; above 100 the kernel is no limit there) and the first call's time.</p>",
                     _speed_plots(run.bench), html_table(table, ("device", "dtype", "n", "direction", "impl", "mode",
                                                             "ratio_range", "limit", "status", "error")),
                     *_self_check(run.bench)]
    sections += ["<h2 id='environment'>Environment</h2>", _environment(meta)]
    return page(title, "".join(sections))


def _self_check(bench: pd.DataFrame) -> list[str]:
    """The framework's own timer beside the harness, and the rows that stayed disturbed, apart."""
    parts = ["<h3 id='self-check'>Self-check</h3>",
             "<p class='note'>Each framework's eager forward per group, timed by its own timer in the same sweeps; "
             "a disagreement beyond 10 % or a ratio range beyond 1.5× re-times the group once.</p>",
             html_table(self_check_rows(bench), ("device", "dtype", "n", "impl", "mode", "direction", "own_timer"))]
    rows = unstable_rows(bench)
    if not rows.empty:
        parts += ["<h3 id='unstable'>Unstable timings</h3>",
                  "<p class='note'>Still disturbed after the re-time: shown, not to be quoted.</p>",
                  html_table(rows, ("device", "dtype", "n", "direction", "impl", "mode", "why"))]
    return parts


def page(title: str, body: str) -> str:
    """A whole self-contained page around `body` (already escaped HTML)."""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title>"
            f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>{body}</body></html>\n")


def write_html(run_dir: str | Path | Run) -> Path:
    run = load_run(run_dir)
    path = run.path / "report.html"
    path.write_text(render_html(run), encoding="utf-8")
    return path
