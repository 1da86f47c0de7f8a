"""report.html, rendered from a stored run: one page, every string escaped (the browser checks are in e2e)."""

from __future__ import annotations

from pathlib import Path

from reports import load_run, render_html
from tests.reports.runs import audit_folder


def test_the_page_is_whole_and_escapes_what_a_run_holds(tmp_path: Path) -> None:
    html = render_html(load_run(audit_folder(tmp_path / "a")))
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    for section in ("id='status'", "id='heatmap'", "id='discrepancies'", "id='environment'"):
        assert section in html
    assert html.count("data:image/png;base64,") == 1  # the heat map; no bench, no speed plots
