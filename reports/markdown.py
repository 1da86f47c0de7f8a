"""`report.md`: the run's summary for people (paste it into a pull request)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from reports.load import Run, load_run
from reports.summary import (
    STATUS_ORDER,
    alarm_rows,
    bench_table,
    findings_table,
    framework_versions,
    profile_lines,
    profile_table,
    self_check_rows,
    size_label,
    status_matrix,
    unstable,
    unstable_rows,
    version_changes,
    versioned,
)

__all__ = ["markdown_table", "render_markdown", "write_markdown"]

_MAX_DISCREPANCIES = 200
_MAX_FINDING_BLOCKS = 60


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def render_markdown(run: Run) -> str:
    meta = run.meta
    packages = meta.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
    title = "BCE conformance audit" if run.conformance is not None else "BCE benchmark"
    lines = [
        f"# {title} {meta.get('run_id', '')}",
        "",
        f"- created: {meta.get('created', '')}; complete: {meta.get('complete', False)}; "
        f"wall time: {meta.get('wall_seconds', '')} s",
        f"- CPU: {meta.get('cpu', {}).get('model', 'unknown')}; flush-to-zero: {meta.get('flush_to_zero')}",
        f"- versions: {versions}",
        "",
    ]
    if run.findings is not None:
        lines += findings_section(run.findings, str(run.path))
    if run.conformance is not None:
        lines += _conformance_sections(run)
    if run.bench is not None:
        lines += _bench_section(run.bench, meta.get("bench", {}))
    return "\n".join(lines) + "\n"


def _conformance_sections(run: Run) -> list[str]:
    meta = run.meta
    assert run.conformance is not None
    table = versioned(run.conformance)
    lines = [
        *_version_section(run.conformance),
        "## Status by implementation and dtype",
        "",
        f"dtypes: {', '.join(meta.get('dtypes', []))}; devices: {', '.join(meta.get('devices', []))}; "
        f"cases: {meta.get('case_count', '')} ({meta.get('case_source', '')}), seed {meta.get('seed', '')}. "
        "Counts of rows (one row per case × reduction × quantity); `worst_ulp` is the largest finite error in "
        "ULPs of the dtype.",
        "",
        markdown_table(status_matrix(table)),
        "## Alarms",
        "",
        "The rows the findings are made of (nonfinite, fail, error, crashed, timeout), worst first; `inexact`, "
        "`rejected` and documented `deviation` rows are in conformance.parquet.",
        "",
    ]
    found = alarm_rows(table)
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
    lines.append(markdown_table(shown))
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
    lines += _profile_section(meta)
    lines += ["## Tolerance policy", ""]
    policy = meta.get("tolerance_policy", {})
    lines += [f"- `{status}`: {policy[status]}" for status in STATUS_ORDER if status in policy]
    lines.append("")
    return lines


def findings_section(findings: pd.DataFrame, run_dir: str, blocks: int = _MAX_FINDING_BLOCKS) -> list[str]:
    """The findings first: how many, a table of all of them by rank, then a short block per finding."""
    alarms = int((findings["status"] != "deviation").sum())
    known = int(findings["known_issues"].map(len).astype(bool).sum())
    lines = ["## Findings", "",
             f"{len(findings)} distinct problems: {alarms} alarms and {len(findings) - alarms} documented "
             f"conventions; {known} with known upstream issues, the rest new. Worst first: alarms before conventions, "
             "ordinary inputs before edges before what lies outside ordinary use, a meaningless result (NaN, inf, "
             "0.0 or no correct digit, an error) before lost digits, then by status and by how many frameworks "
             "share it.", "", markdown_table(findings_table(findings))]
    for finding in findings.head(blocks).itertuples(index=False):
        lines += _finding_block(finding, run_dir)
    if len(findings) > blocks:
        lines += [f"The other {len(findings) - blocks} are in findings.json.", ""]
    return lines


def _finding_block(finding: Any, run_dir: str) -> list[str]:
    example = ""
    if finding.minimal == "element":
        name = "p" if finding.input_form == "probs" else "x"
        weights = "".join(f", {label} = {_cell(value)}" for label, value in (("weight", finding.weight),
                                                                              ("pos_weight", finding.pos_weight))
                          if value == value)
        example = (f"{name} = {_cell(finding.x)}, y = {_cell(finding.y)}{weights} in {finding.example_dtype} "
                   f"({finding.example_impl}, {finding.example_mode}): got {_cell(finding.got)}, exact "
                   f"{_cell(finding.expected)}")
    else:
        example = f"case `{finding.example_case}` in {finding.example_dtype} ({finding.example_impl})"
    known = ", ".join(finding.known_issues) or "none known: new"
    return [f"### {finding.rank}. {_cell(finding.title)}", "",
            f"- `{finding.finding_id}` · {finding.kind} · {finding.status} · {finding.family}, {finding.region}, "
            f"{finding.failure} · {finding.rows} rows",
            f"- holds in: {', '.join(finding.impls)}; dtypes {', '.join(finding.dtypes)}; reductions "
            f"{', '.join(finding.reductions)}; modes {', '.join(finding.modes)}; checks {', '.join(finding.checks)}",
            f"- minimal example: {example}",
            *([f"- onset: {finding.onset}"] if getattr(finding, "onset", "") else []),
            *([f"- why: {finding.why}"] if finding.why else []),
            f"- known issues: {known}",
            f"- reproduce: `python -m harness repro {run_dir} {finding.finding_id}`; report it: "
            f"`python -m harness issue {run_dir} {finding.finding_id}`", ""]


def _profile_section(meta: dict[str, Any]) -> list[str]:
    """Where the time went (meta.json's `profile`): per framework and phase, then this process's own."""
    profile = meta.get("profile")
    if not profile:
        return []
    return ["## Where the time went", "",
            "Seconds per framework and phase, summed over its workers (`import_s`: importing and configuring the "
            "framework; `devices_s`: asking it for its devices; `compute_s`: its calls, by mode; `compiler`: what "
            "the framework says it compiled during them; `judge_s` and `journal_s`: this process judging its "
            "results and writing their rows). Compare two runs' tables to "
            "see what a change costs.", "", markdown_table(profile_table(profile)),
            *profile_lines(profile, meta.get("wall_seconds"), meta.get("jobs")), ""]


def _version_section(conformance: pd.DataFrame) -> list[str]:
    """For a merged version matrix: what changed between framework versions."""
    several = framework_versions(conformance)
    if not several:
        return []
    changes = version_changes(conformance)
    listed = ", ".join(f"{impl}: {', '.join(versions)}" for impl, versions in several.items())
    return ["## What changed between framework versions", "", f"Versions compared: {listed}. Rows whose status or "
            f"worst ULP error differs between versions ({len(changes)}):", "", markdown_table(changes)]


def _bench_section(bench: pd.DataFrame, settings: dict[str, Any]) -> list[str]:
    threads = settings.get("threads", {})
    per_framework = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(info.items()) if k != "cpus")
                              for name, info in sorted(threads.get("frameworks", {}).items()))
    return [
        "## Speed",
        "",
        f"{settings.get('sweeps', '')} interleaved sweeps, taken in turn by {settings.get('processes', 1)} "
        f"worker process(es) per framework; every framework pinned to CPUs "
        f"{threads.get('cpus', [])} with {threads.get('requested', '')} threads ({per_framework or 'as recorded'}). "
        "`median_ms`: per call, synced; `ratio_to_best`: to the fastest at the same device, dtype, size and "
        "direction, within each sweep (median over sweeps; `ratio_range`: its quartiles over the sweeps); "
        "`limit_pct`: the limit as a percentage of the time (100 is as fast as this machine goes), the limit "
        "being the larger of the memory floor and the speed-of-light kernel's time (`limit` says which; above 100"
        " the framework beat the kernel, which is then no limit there); `roofline_pct`: bytes of x and y over the"
        " time, against the best STREAM-style read of as many bytes in the same run; `compile_s`: the first call "
        "alone, in the first process; `peak_mib`: memory one steady call needed; `status`: the audit's worst "
        "accuracy status there, when this folder has an audit.",
        "",
        *_kernel_lines(settings.get("kernel", {})),
        markdown_table(bench_table(bench[~unstable(bench)])),
        *_self_check_lines(bench, settings.get("checks", [])),
    ]


def _kernel_lines(kernel: dict[str, Any]) -> list[str]:
    """What the speed-of-light kernel was, and how right: from meta.json."""
    build = kernel.get("build", {})
    if not build:
        return []
    if "unavailable" in build:
        return [f"No speed-of-light kernel ({build['unavailable']}): the limit is the memory floor.", ""]
    accuracy = "; ".join(f"{size_label(t['n'])} {t['dtype']} {t['direction']}: "
                         f"{t.get('accuracy') or ': '.join(t.get('error', []))}" for t in kernel.get("times", []))
    vectors = f"{build['vector_bits']}-bit vectors" if build.get("vector_bits") else "vectorised as the compiler says"
    return [f"Speed-of-light kernel: {build['version']}, `{' '.join(build['flags'])}`, {vectors} (the CPU's widest: "
            f"{build['simd_bits']} bits), {'OpenMP' if build['openmp'] else 'one thread'}; its results against the "
            f"exact reference: {accuracy or 'not timed'}.", ""]


def _self_check_lines(bench: pd.DataFrame, checks: list[dict[str, Any]]) -> list[str]:
    """The framework's own timer beside the harness, the groups re-timed, and the rows that stayed unstable."""
    checked = self_check_rows(bench)
    if checked.empty and not checks:
        return []
    retimed = [check for check in checks if check["retimed"]]
    lines = ["", "### Self-check", "",
             "Per group, each framework's eager forward (or its first configuration) was also timed by the "
             "framework's own timer (`torch.utils.benchmark`; `timeit` around the call and its sync elsewhere) in "
             "the same processes and sweeps. A group is re-timed once when the two disagree by more than 10 % or "
             "a configuration's `ratio_range` spans more than 1.5× (the disturbed configurations again, beside "
             "the fastest of their direction); rows still disturbed after that are listed "
             f"apart below. Groups re-timed: {len(retimed)} of {len(checks)}.", "", markdown_table(checked)]
    for check in retimed:
        lines += ["", f"Re-timed {check['device']} {check['dtype']} n={size_label(check['n'])}: "
                      + "; ".join(check["retimed"])]
    rows = unstable_rows(bench)
    if not rows.empty:
        lines += ["", "#### Unstable timings", "", "Still disturbed after the re-time; their figures are shown "
                  "but should not be quoted.", "", markdown_table(rows)]
    return lines


def write_markdown(run_dir: str | Path | Run) -> Path:
    run = load_run(run_dir)
    path = run.path / "report.md"
    path.write_text(render_markdown(run), encoding="utf-8")
    return path
