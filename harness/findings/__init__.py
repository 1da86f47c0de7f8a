"""What an audit found, for the people who act on it: the CI gate over expected findings, and a standalone
reproducer per discrepancy."""

from harness.findings.gate import Expected, ExpectedFileError, GateResult, apply_gate, load_expected, parse_fail_on
from harness.findings.repro import ReproError, reproducer

__all__ = ["Expected", "ExpectedFileError", "GateResult", "ReproError", "apply_gate", "load_expected",
           "parse_fail_on", "reproducer"]
