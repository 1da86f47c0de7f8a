"""`report.md`: the run's summary for people (paste it into a pull request)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from reports.load import Run, load_run
from reports.summary import STATUS_ORDER, discrepancies, status_matrix

__all__ = ["render_markdown", "write_markdown"]

_MAX_DISCREPANCIES = 200


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def render_markdown(run: Run) -> str:
    meta, table = run.meta, run.conformance
    packages = meta.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
    lines = [
        f"# BCE conformance audit {meta.get('run_id', '')}",
        "",
        f"- created: {meta.get('created', '')}; complete: {meta.get('complete', False)}; "
        f"wall time: {meta.get('wall_seconds', '')} s",
        f"- dtypes: {', '.join(meta.get('dtypes', []))}; devices: {', '.join(meta.get('devices', []))}; "
        f"cases: {meta.get('case_count', '')} ({meta.get('case_source', '')}), seed {meta.get('seed', '')}",
        f"- CPU: {meta.get('cpu', {}).get('model', 'unknown')}; flush-to-zero: {meta.get('flush_to_zero')}",
        f"- versions: {versions}",
        "",
        "## Status by implementation and dtype",
        "",
        "Counts of rows (one row per case × reduction × quantity); `worst_ulp` is the largest finite error in "
        "ULPs of the dtype.",
        "",
        _table(status_matrix(table)),
        "## Discrepancies",
        "",
    ]
    found = discrepancies(table)
    columns = ["status", "impl", "dtype", "case", "reduction", "quantity", "check", "mode", "deviation",
               "max_ulp_error", "worst_x", "worst_y", "got", "expected", "error_type", "error_message"]
    shown = found[[c for c in columns if c in found.columns]].head(_MAX_DISCREPANCIES).copy()
    row_ids = found["row_id"].head(len(shown))
    shown["reproduce"] = [f"`python -m harness repro {run.path} {row_id}`" for row_id in row_ids]
    lines.append("Each row's last column prints a standalone script (the framework and NumPy only) that reproduces it.")
    lines.append("")
    if len(found) > len(shown):
        lines.append(f"The first {len(shown)} of {len(found)}, worst first; the rest are in conformance.parquet.")
        lines.append("")
    lines.append(_table(shown))
    lines += ["## Documented conventions", ""]
    matched = meta.get("matched_conventions", {})
    stale = set(meta.get("stale_conventions", []))
    for convention in meta.get("conventions", []):
        state = (f"matched {matched[convention['id']]} rows" if convention["id"] in matched
                 else "STALE: its implementations ran but it matched no row" if convention["id"] in stale
                 else "not exercised in this run")
        lines.append(f"- `{convention['id']}` ({', '.join(convention['impls'])}, {convention['quantity']}): "
                     f"{convention['reason']} — {convention['link']} — {state}")
    lines.append("")
    lines += ["## Tolerance policy", ""]
    policy = meta.get("tolerance_policy", {})
    lines += [f"- `{status}`: {policy[status]}" for status in STATUS_ORDER if status in policy]
    return "\n".join(lines) + "\n"


def write_markdown(run_dir: str | Path) -> Path:
    run = load_run(run_dir)
    path = run.path / "report.md"
    path.write_text(render_markdown(run), encoding="utf-8")
    return path
