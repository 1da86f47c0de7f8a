"""What an audit found, for the people who act on it: rows grouped into findings (one root cause each, with a
minimal example, where it holds, why, the upstream issues and a reproducer), the CI gate over expected
findings, and standalone reproducers.

The package is callable: `harness.findings(RUN_DIR)` returns a run's findings as a DataFrame.
"""

import sys
import types
from pathlib import Path
from typing import Any

from harness.findings.folder import read_findings, record_findings
from harness.findings.gate import Expected, ExpectedFileError, GateResult, apply_gate, load_expected, parse_fail_on
from harness.findings.grouping import FINDING_COLUMNS, build_findings
from harness.findings.known import KnownIssue, link_known_issues, load_known_issues
from harness.findings.repro import ReproError, reproducer
from harness.findings.signature import finding_id

__all__ = ["FINDING_COLUMNS", "Expected", "ExpectedFileError", "GateResult", "KnownIssue", "ReproError",
           "apply_gate", "build_findings", "finding_id", "link_known_issues", "load_expected", "load_known_issues",
           "parse_fail_on", "read_findings", "record_findings", "reproducer"]


class _CallableRoom(types.ModuleType):
    """`harness.findings(RUN_DIR)`: the room of that name is also the call that reads a run's findings."""

    def __call__(self, run_dir: str | Path) -> Any:
        return read_findings(run_dir)


sys.modules[__name__].__class__ = _CallableRoom
