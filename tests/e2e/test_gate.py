"""`audit --fail-on … --expected FILE`: the audit as a CI gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

# torch.logits and the worked example compute log(e^-m + e^(-x-m)) without log1p: the float32 loss at x = -30,
# y = 0 is 0 instead of 9.36e-14
LARGE = '''
[[finding]]
impl = "*"
case = "large_logits"
status = "fail"
reason = "log(exp(-m) + exp(-x - m)) instead of log1p: the tiny loss at large |x| rounds to 0"
'''
NUMPY_NEVER = '''
[[finding]]
impl = "numpy.probs"
status = "nonfinite"
reason = "an entry that matches nothing: reported as stale"
'''


def _audit(tmp_path: Path, name: str, *gate: str) -> tuple[int, str, str]:
    done = run_cli("audit", "--frameworks", "numpy,torch", "--dtypes", "float32", "--families", "seed,large",
                   "--out", str(tmp_path / name), "--quiet", *gate)
    return done.returncode, done.stdout, done.stderr


def test_gate_fails_on_an_unlisted_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # as in a workflow: annotations too
    code, out, err = _audit(tmp_path, "a", "--fail-on", "fail,nonfinite")
    assert code == 1, err
    assert "gate --fail-on fail,nonfinite:" in out and "unexpected findings (the gate fails)" in out
    assert "::error title=bce-harness gate::fail: torch.logits on large_logits (float32" in out
    assert "large_logits" in out and (tmp_path / "a" / "conformance.parquet").is_file()  # results kept


def test_listed_findings_pass_and_stale_entries_are_reported(tmp_path: Path) -> None:
    expected = tmp_path / "expected.toml"
    expected.write_text(LARGE + NUMPY_NEVER)
    code, out, err = _audit(tmp_path, "b", "--fail-on", "fail,nonfinite", "--expected", str(expected))
    assert code == 0, out + err
    assert ", 0 not" in out
    assert "warning: expected finding 2 (impl=numpy.probs, status=nonfinite) matched no row: stale?" in out
    assert "finding 1" not in out


def test_without_fail_on_the_audit_never_fails(tmp_path: Path) -> None:
    code, out, _ = _audit(tmp_path, "c")
    assert code == 0 and "gate" not in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('[[finding]]\nimpl = "torch.logits"\n', "finding 1: missing field 'reason'"),
        ('[[finding]]\nimpl = "torch.logits"\ncolour = "red"\nreason = "x"\n', "finding 1: unknown field 'colour'"),
        ('[[finding]]\nimpl = 3\nreason = "x"\n', "field 'impl' must be a string pattern"),
        ('[[finding]]\nreason = "x"\n', "give at least one field to match"),
        ("[[finding]\n", "is not valid TOML"),
    ],
)
def test_a_malformed_expected_file_is_bad_usage(tmp_path: Path, content: str, fragment: str) -> None:
    expected = tmp_path / "expected.toml"
    expected.write_text(content)
    code, _, err = _audit(tmp_path, "d", "--fail-on", "fail", "--expected", str(expected))
    assert code == 2 and fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()  # refused before any work


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--fail-on", "failed"], "--fail-on: unknown status 'failed'; statuses: pass"),
        (["--expected", "x.toml"], "--expected lists findings for a gate: give --fail-on too"),
        (["--fail-on", "fail", "--expected", "no-such.toml"], "'no-such.toml' does not exist"),
    ],
)
def test_gate_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    code, _, err = _audit(tmp_path, "e", *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
