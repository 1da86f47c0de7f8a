"""Reports read stored results only (meta.json, conformance.parquet) and render them."""

from reports.load import Run, RunReadError, load_run
from reports.markdown import render_markdown, write_markdown
from reports.summary import STATUS_ORDER, discrepancies, status_matrix

__all__ = [
    "STATUS_ORDER",
    "Run",
    "RunReadError",
    "discrepancies",
    "load_run",
    "render_markdown",
    "status_matrix",
    "write_markdown",
]
