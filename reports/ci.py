"""CI-native output of a run folder: a GitHub body (`report.github.md`, findings first, details collapsed), a JUnit
file (`junit.xml`, one testcase per finding) and a JSON document (`report.json`, findings and rows, validated by
the JSON Schema shipped in `reports/schema/`, versioned with the run folder's schema version)."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from cases import BadInput
from harness.store.schema import SCHEMA_VERSION
from reports.compare import Comparison
from reports.load import Run, load_run
from reports.markdown import markdown_table
from reports.summary import findings_table

__all__ = ["FORMATS", "check_formats", "github_markdown", "json_document", "junit_xml", "report_schema",
           "validate_report", "write_comparison", "write_formats"]

FORMATS = {"github": "report.github.md", "junit": "junit.xml", "json": "report.json"}
_CONVENTION = "deviation"  # a documented convention's status: every other finding is an alarm


def report_schema() -> dict[str, Any]:
    """The JSON Schema of `report.json` (package data)."""
    text = resources.files("reports").joinpath("schema", "report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(document: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError where the document breaks the schema."""
    import jsonschema  # only `--format json` needs it

    jsonschema.validate(document, report_schema())


def _plain(value: Any) -> Any:
    """A JSON value: NaN and infinities as null, NumPy scalars and arrays as Python ones."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return [{str(column): _plain(value) for column, value in row.items()} for row in frame.to_dict("records")]


def json_document(run: Run) -> dict[str, Any]:
    """Findings and conformance rows of a run, with what identifies the run."""
    meta = run.meta
    return {"schema_version": SCHEMA_VERSION, "run_id": str(meta.get("run_id", "")),
            "created": str(meta.get("created", "")), "complete": bool(meta.get("complete", False)),
            "frameworks": [str(f) for f in meta.get("frameworks", [])],
            "findings": _records(run.findings), "rows": _records(run.conformance)}


def junit_xml(run: Run) -> str:
    """One testcase per finding: an alarm fails with its title and minimal example, a documented convention
    passes with its name in the output."""
    findings = run.findings if run.findings is not None else pd.DataFrame()
    alarms = int((findings["status"] != _CONVENTION).sum()) if len(findings) else 0
    suite = ElementTree.Element("testsuite", name="bce-harness", tests=str(len(findings)), failures=str(alarms),
                                errors="0", skipped="0")
    for finding in findings.itertuples(index=False):
        _testcase(suite, finding)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ElementTree.Element, finding: Any) -> None:
    case = ElementTree.SubElement(suite, "testcase", classname=f"bce.{finding.kind}",
                                  name=f"{finding.finding_id} {finding.title}")
    detail = (f"{finding.status}: {finding.title}\nimplementations: {', '.join(finding.impls)}; dtypes: "
              f"{', '.join(finding.dtypes)}\nreproduce: {finding.repro}")
    if finding.status != _CONVENTION:
        failure = ElementTree.SubElement(case, "failure", message=str(finding.title), type=str(finding.status))
        failure.text = detail
    else:
        ElementTree.SubElement(case, "system-out").text = f"documented convention {finding.convention}\n{detail}"


def _details(finding: Any) -> list[str]:
    example = (f"x = {finding.x}, y = {finding.y}: got {finding.got}, exact {finding.expected}"
               if finding.minimal == "element" else f"case `{finding.example_case}`")
    known = ", ".join(finding.known_issues) or "none known: new"
    lines = [f"<details><summary>{finding.rank}. {finding.status}: {finding.title}</summary>", "",
             f"- `{finding.finding_id}` · {finding.kind} · {', '.join(finding.impls)} · {', '.join(finding.dtypes)}",
             f"- minimal example ({finding.example_impl}, {finding.example_dtype}): {example}"]
    lines += [f"- onset: {finding.onset}"] if getattr(finding, "onset", "") else []
    lines += [f"- why: {finding.why}"] if finding.why else []
    return [*lines, f"- known issues: {known}", f"- reproduce: `{finding.repro}`", "", "</details>", ""]


def github_markdown(run: Run) -> str:
    """The body for a pull request or a job summary: the findings table (one row per finding), then each
    finding's details collapsed."""
    findings = run.findings if run.findings is not None else pd.DataFrame()
    alarms = int((findings["status"] != _CONVENTION).sum()) if len(findings) else 0
    rows = 0 if run.conformance is None else len(run.conformance)
    lines = [f"## bce-harness: {alarms} alarm finding{'s' if alarms != 1 else ''}, "
             f"{len(findings) - alarms} documented conventions", "",
             f"Run `{run.meta.get('run_id', '')}`: {rows} rows over {', '.join(run.meta.get('frameworks', []))}.",
             ""]
    if len(findings):
        lines += [markdown_table(findings_table(findings)), ""]
        for finding in findings.itertuples(index=False):
            lines += _details(finding)
    else:
        lines.append("No finding.")
    return "\n".join(lines) + "\n"


def _to_summary(body: str) -> None:
    """Under GitHub Actions, append to the job summary."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(body)


def write_comparison(comparison: Comparison, text: str) -> Path:
    """`compare.github.md` in the new run's folder: the verdict first, the comparison's Markdown collapsed."""
    regressions = comparison.regressions
    head = f"**{regressions} regression{'s' if regressions != 1 else ''}**" if regressions else "**No regression.**"
    body = (f"## bce-harness: {comparison.new.name} against {comparison.base.name}\n\n{head}\n\n"
            f"<details><summary>the comparison</summary>\n\n{text}\n</details>\n")
    path = comparison.new / "compare.github.md"
    path.write_text(body, encoding="utf-8")
    _to_summary(body)
    return path


def check_formats(formats: Sequence[str]) -> None:
    """Bad usage, before anything is written: a format that is not one of FORMATS."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise BadInput(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")


def write_formats(run_dir: str | Path | Run, formats: Sequence[str]) -> list[Path]:
    """Write the asked formats into the run folder (the JSON validated first); under GitHub Actions the GitHub
    body is also appended to the job summary ($GITHUB_STEP_SUMMARY)."""
    check_formats(formats)
    run = load_run(run_dir)
    written = []
    for name in dict.fromkeys(formats):
        path = run.path / FORMATS[name]
        if name == "json":
            document = json_document(run)
            validate_report(document)
            path.write_text(json.dumps(document, allow_nan=False) + "\n", encoding="utf-8")
        elif name == "junit":
            path.write_text(junit_xml(run), encoding="utf-8")
        else:
            body = github_markdown(run)
            path.write_text(body, encoding="utf-8")
            _to_summary(body)
        written.append(path)
    return written
