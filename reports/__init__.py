"""Reports read stored results only (meta.json, conformance.parquet, bench.parquet) and render them: Markdown,
HTML with plots, comparisons of two runs."""

from pathlib import Path

from reports.history import load_history, write_history
from reports.html import render_html, write_html
from reports.load import Run, RunReadError, load_run
from reports.markdown import render_markdown, write_markdown
from reports.summary import STATUS_ORDER, alarm_rows, bench_table, size_label, status_matrix

__all__ = [
    "STATUS_ORDER",
    "Run",
    "RunReadError",
    "alarm_rows",
    "bench_table",
    "load_history",
    "load_run",
    "render_html",
    "render_markdown",
    "size_label",
    "status_matrix",
    "write_history",
    "write_html",
    "write_markdown",
    "write_reports",
]


def write_reports(run_dir: str | Path) -> list[Path]:
    """report.md and report.html in the run folder (read once for both)."""
    run = load_run(run_dir)
    return [write_markdown(run), write_html(run)]
