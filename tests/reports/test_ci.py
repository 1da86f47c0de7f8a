"""CI-native output of a hand-made run folder (three findings: two alarms, one documented convention): the JSON
validates against the shipped schema and a malformed one does not, junit.xml has one testcase per finding, the
GitHub body has the findings table and each finding's details, and compare --format github."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import jsonschema
import pytest

from harness.findings import FINDING_COLUMNS, record_findings
from harness.store.schema import CONFORMANCE_COLUMNS, SCHEMA_VERSION
from reports.ci import report_schema, validate_report, write_formats
from tests.conftest import run_main
from tests.reports.runs import audit_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = audit_folder(tmp_path / "a")
    record_findings(path)
    return path


def test_the_schema_names_every_column_with_a_type_and_the_run_folders_version() -> None:
    schema = report_schema()
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    findings, rows = (schema["properties"][k]["items"]["properties"] for k in ("findings", "rows"))
    assert list(findings) == FINDING_COLUMNS and list(rows) == CONFORMANCE_COLUMNS
    assert all("type" in spec or "enum" in spec for spec in [*findings.values(), *rows.values()])


def test_the_json_validates_and_a_malformed_one_does_not(folder: Path) -> None:
    written = write_formats(folder, ["json"])
    document = json.loads(written[0].read_text())
    validate_report(document)
    assert len(document["rows"]) == 5 and len(document["findings"]) == 3
    worst = next(r for r in document["rows"] if r["status"] == "nonfinite")
    assert worst["max_ulp_error"] is None  # inf in the table: null in JSON
    for breaking in (lambda d: d["rows"][0].update(status="great"), lambda d: d["findings"][0].pop("title"),
                     lambda d: d.update(schema_version=SCHEMA_VERSION + 1),
                     lambda d: d["rows"][1].update(n="four")):
        broken = copy.deepcopy(document)
        breaking(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate_report(broken)


def test_junit_has_one_testcase_per_finding_and_alarms_fail(folder: Path) -> None:
    (path,) = write_formats(folder, ["junit"])
    suite = ElementTree.parse(path).getroot()
    cases = suite.findall("testcase")
    assert suite.get("tests") == "3" and len(cases) == 3 and suite.get("failures") == "2"
    assert len([c for c in cases if c.find("failure") is not None]) == 2
    convention = next(c for c in cases if c.find("failure") is None)
    assert "torch-bce-log-clamp" in (convention.findtext("system-out") or "")


def test_the_github_body_leads_with_the_findings_table_and_collapses_details(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (path,) = write_formats(folder, ["github"])
    body = path.read_text()
    assert body.startswith("## bce-harness: 2 alarm findings, 1 documented conventions")
    table = [line for line in body.splitlines() if line.startswith("| ") and "| rank |" not in line]
    assert len(table) == 3 and body.count("<details>") == 3 and body.count("</details>") == 3
    assert summary.read_text() == body  # the job summary gets it too


def test_the_cli_writes_the_formats_and_refuses_an_unknown_one(folder: Path) -> None:
    done = run_main("report", str(folder), "--format", "json,junit")
    assert done.returncode == 0, done.stderr
    assert (folder / "report.json").is_file() and (folder / "junit.xml").is_file()
    bad = run_main("report", str(folder), "--format", "yaml")
    assert bad.returncode == 2 and "unknown format 'yaml'; choose from github, junit, json" in bad.stderr


def test_compare_writes_its_github_body_into_the_new_run(folder: Path, tmp_path: Path) -> None:
    new = audit_folder(tmp_path / "b", run_id="run-b")
    record_findings(new)
    done = run_main("compare", str(folder), str(new), "--format", "github")
    assert done.returncode == 0, done.stderr
    body = (new / "compare.github.md").read_text()
    assert body.startswith("## bce-harness: b against a") and "<details>" in body
