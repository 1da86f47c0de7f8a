"""Reports read stored results only (meta.json, conformance.parquet, bench.parquet) and render them."""

from reports.load import Run, RunReadError, load_run
from reports.markdown import render_markdown, write_markdown
from reports.summary import STATUS_ORDER, bench_table, discrepancies, size_label, status_matrix

__all__ = [
    "STATUS_ORDER",
    "Run",
    "RunReadError",
    "bench_table",
    "discrepancies",
    "load_run",
    "render_markdown",
    "size_label",
    "status_matrix",
    "write_markdown",
]
