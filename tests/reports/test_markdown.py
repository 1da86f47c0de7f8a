"""report.md: the summary for a pull request, from the stored run alone."""

from __future__ import annotations

from pathlib import Path

from harness.findings import record_findings
from reports import load_run, render_markdown, write_markdown
from tests.reports.runs import audit_folder


def test_the_report_leads_with_findings_then_status_then_alarms_with_reproducers(tmp_path: Path) -> None:
    folder = audit_folder(tmp_path / "a")
    record_findings(folder)
    text = render_markdown(load_run(folder))
    assert text.startswith("# BCE conformance audit run-a\n")
    assert text.index("## Findings") < text.index("## Status by implementation and dtype") < text.index("## Alarms")
    findings = text[text.index("## Findings"):text.index("## Status")]
    assert "3 distinct problems: 2 alarms and 1 documented conventions" in findings
    assert findings.index("| 1 | nonfinite |") < findings.index("| 2 | fail |") < findings.index("| 3 | deviation |")
    assert f"`python -m harness repro {folder} " in findings and "`python -m harness issue " in findings
    alarms = text[text.index("## Alarms"):]
    lines = [line for line in alarms.splitlines() if line.startswith("| nonfinite") or line.startswith("| fail")]
    assert len(lines) == 2 and lines[0].startswith("| nonfinite")  # worst first
    assert "torch-bce-log-clamp" not in alarms[:alarms.index("## Documented conventions")]  # not an alarm
    assert f"`python -m harness repro {folder} " in lines[1] and "| 1.5e+07 |" in lines[1]
    assert "- `pass`: forward error ≤ 4 ULP" in text  # the tolerance policy, from meta
    assert write_markdown(folder).read_text() == text


PROFILE = {
    "main": {"setup_s": 0.3, "plan_s": 0.01, "references_s": 3.4, "judge_s": 7.5, "journal_s": 0.8, "waiting_s": 80.0,
             "consolidate_s": 0.2, "cpu_s": 10.0},
    "references": {"computed": 200, "cached": 12, "slow_elements": 9888, "seconds": 3.4},
    "frameworks": {
        "jax": {"workers": 2, "import_s": 1.1, "devices_s": 0.03, "compute_s": {"batch": 14.0, "eager": 124.0},
                "compiler": {"programs": 2650, "cached": 0, "compile_s": 90.5, "lower_s": 25.0}, "judge_s": 3.3,
                "journal_s": 0.35, "wall_s": 144.0, "cpu_s": 134.0, "peak_mib": 3052},
        "numpy": {"workers": 1, "import_s": 0.01, "devices_s": 0.0, "compute_s": {"eager": 0.4}, "compiler": {},
                  "judge_s": 1.0, "journal_s": 0.1, "wall_s": 1.6, "cpu_s": 1.0, "peak_mib": 287},
    },
}


def test_the_profile_says_where_the_time_went(tmp_path: Path) -> None:
    folder = audit_folder(tmp_path / "p", profile=PROFILE, wall_seconds=100.0, jobs=2)
    text = render_markdown(load_run(folder))
    section = text[text.index("## Where the time went"):text.index("## Tolerance policy")]
    assert ("| jax | 2 | 1.1 | 0.03 | eager 124, batch 14 | 2650 programs (0 from its cache), 90.5 s compiling, "
            "25 s lowering | 3.3 | 0.35 | 144 | 134 | 3052 |") in section
    assert "| numpy | 1 | 0.01 | 0 | eager 0.4 |  | 1 | 0.1 | 1.6 | 1 | 287 |" in section
    assert "references 3.4 s, judging 7.5 s" in section and "200 computed (9888 elements in mpmath), 12 from" in section
    assert "145.0 in 100 s of wall time with 2 workers at once (1.45 CPUs busy" in section  # 134 + 1 + 10
    assert "## Where the time went" not in render_markdown(load_run(audit_folder(tmp_path / "q")))  # older runs
