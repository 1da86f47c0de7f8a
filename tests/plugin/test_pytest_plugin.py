"""The pytest plugin (`harness.pytest_plugin`) in throwaway projects: inert without --bce, the matrix as items with
readable ids, outcomes from the real statuses of audits of NumPy in float32 (on the `large` family, and on
`large`, `overflow` and `relations` for every outcome but xfail), the expected-findings file, and one-line usage
errors. The audits run in subprocesses (`runpytest_subprocess`), about two seconds each.

The numbers are the audit's own on `large_logits` (x up to ±30, hard labels): NumPy's `numpy.logits` passes every
row; its `numpy.lse_formula` (log(e^-m + e^(-x-m)) without log1p) returns 0 where the exact loss at x = 30, y = 1
and the exact gradient at x = -30, y = 0 are e^-30 = 9.35762291e-14, so its none loss and its gradients fail
(finding 77b43d7ff96b: the gradient; 44fcf67206b8: the loss), while its mean and sum losses (dominated by the
other elements) pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pandas.core.arrays.arrow.extension_types  # registers pyarrow's types: an in-process run must not again
import pytest

# pytester's in-process runs drop the modules a run imported; the harness is imported here once, so that those
# runs (which plan, never audit: the audits run in subprocesses) share its classes with this process
import harness.api
import harness.conformance.keys  # noqa: F401

pytest_plugins = ["pytester"]

SMALL = ("--bce", "--bce-frameworks", "numpy", "-p", "no:randomly", "-p", "no:cacheprovider")
LARGE = (*SMALL, "--bce-families", "large")
LSE = "numpy.lse_formula[large_logits-float32-cpu-{}-{}-reference-eager]"
GRADIENT_FINDING = "77b43d7ff96b"
FAILING = {LSE.format("none", "loss"), LSE.format("none", "grad"), LSE.format("mean", "grad"),
           LSE.format("sum", "grad")}
EXPECTED_FILE = f"""
[[finding]]
finding_id = "{GRADIENT_FINDING}"
reason = "the lse formula without log1p loses the gradient at x = -30"

[[finding]]
impl = "numpy.logits"
reason = "an entry that lists nothing failing: stale"
"""


def _project_with_own_cases(pytester: pytest.Pytester) -> None:
    """A project whose own `cases` package shadows the harness's (on sys.path through the `pythonpath` ini)."""
    pytester.makeini("[pytest]\npythonpath = .\n")
    pytester.mkpydir("cases")
    pytester.makepyfile(test_own="""
        import sys

        def test_own():
            loaded = sorted(m for m in ("torch", "tensorflow", "jax", "keras", "pandas") if m in sys.modules)
            assert "harness.pytest_plugin" in sys.modules and loaded == []
    """)


def test_without_bce_the_plugin_is_inert_and_a_clash_matters_only_with_it(pytester: pytest.Pytester) -> None:
    _project_with_own_cases(pytester)
    plain = pytester.runpytest_subprocess("-p", "no:randomly")
    plain.assert_outcomes(passed=1)  # its own test only, which finds the plugin loaded and no framework nor pandas
    assert "collected 1 item" in plain.stdout.str()
    asked = pytester.runpytest_subprocess("--bce", "--bce-frameworks", "numpy")
    assert asked.ret == pytest.ExitCode.USAGE_ERROR
    error = [line for line in asked.errlines if line.strip()]
    assert len(error) == 1 and "Traceback" not in asked.stderr.str(), asked.stderr.str()
    assert error[0].startswith("ERROR: bce-harness: the package 'cases' here is ")
    assert error[0].endswith("cases, not bce-harness's own; rename or move it out of sys.path")


def test_collection_plans_the_matrix_without_running_it(pytester: pytest.Pytester) -> None:
    items, _ = pytester.inline_genitems(*LARGE, "--bce-dtypes", "float32")
    ids = [item.nodeid for item in items]
    assert len(ids) == 12 and ids[0] == "bce::numpy.logits[large_logits-float32-cpu-none-loss-reference-eager]"
    assert {f"bce::{name}" for name in FAILING} <= set(ids)
    assert {item.get_closest_marker("xdist_group").kwargs["name"] for item in items} == {"numpy"}
    assert not list(pytester.path.rglob("conformance.parquet"))  # planned, not run


@pytest.mark.parametrize(("args", "message"), [
    (("--bce-frameworks", "pytorch"), "unknown framework 'pytorch'; available: numpy, torch"),
    (("--bce-dtypes", "float8"), "unknown dtype 'float8'; available: float64"),
    (("--bce-families", "sead"), "unknown family 'sead'"),
    (("--bce-cases", "no-such.json"), "case file 'no-such.json' does not exist"),
    (("--bce-expected", "no-such.toml"), "'no-such.toml' does not exist; pass an existing file to --bce-expected"),
    (("--bce-expected", "bad.toml"), "'bad.toml', finding 1: missing field 'reason'"),
    (("--bce-fail-on", "fail,bogus"), "--bce-fail-on: unknown status 'bogus'"),
    (("--bce-modes", "warp"), "unknown mode 'warp'"),
])
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    pytester.makefile(".toml", bad='[[finding]]\nimpl = "numpy.logits"\n')
    done = pytester.runpytest("--bce", *args)
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    error = [line for line in done.errlines if line.strip()]
    assert len(error) == 1 and error[0].startswith("ERROR: bce-harness: ") and message in error[0], error


def test_an_environment_variable_is_a_fallback(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCE_DTYPES", "float99")
    done = pytester.runpytest("--bce")
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown dtype 'float99'" in done.errlines[0]


@pytest.mark.slow
def test_the_matrix_runs_with_the_audits_statuses(pytester: pytest.Pytester) -> None:
    done = pytester.runpytest_subprocess(*SMALL, "--bce-families", "large,overflow,relations", "--bce-dtypes",
                                         "float32", "--junitxml", "junit.xml", "-rA")
    # 255 rows: 171 pass and 37 inexact pass, 43 fail and 2 nonfinite fail, 2 unsupported skip
    done.assert_outcomes(passed=208, failed=45, skipped=2)
    failed = {line.split(" ")[1] for line in done.outlines if line.startswith("FAILED ")}  # " - reason" in CI
    assert {f"bce::{name}" for name in FAILING} <= failed
    assert "bce::numpy.logits[overflow_mean_float32-float32-cpu-mean-loss-reference-eager]" in failed  # nonfinite
    assert "bce::numpy.lse_formula[relation_logits-float32-cpu-none-loss-relation-eager-symmetry]" in failed
    out = done.stdout.str()
    assert "numpy.lse_formula on large_logits (float32, cpu, sum, grad, reference, eager): fail" in out
    assert "worst element: x = -30, y = 0" in out and "got 0, expected 9.35762291e-14" in out
    assert f"repro: python -m harness repro {pytester.path}" in out and f" {GRADIENT_FINDING}\n" in out
    assert "numpy.probs[relation_logits-float32-cpu-mean-loss-relation-eager-probs_logits]: unsupported: BCE(σ(x))" \
           in out
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert len(cases) == 255
    assert cases[LSE.format("none", "grad")]["bce_status"] == "fail"
    assert cases[LSE.format("none", "grad")]["bce_finding_id"] == GRADIENT_FINDING
    assert cases[LSE.format("none", "grad")]["bce_expected"] == "9.35762291e-14"
    assert cases[LSE.format("mean", "loss")]["bce_status"] == "pass"
    assert cases["numpy.logits[relation_logits-float32-cpu-none-grad-reference-eager]"]["bce_status"] == "inexact"
    statuses = [properties["bce_status"] for properties in cases.values()]
    assert {status: statuses.count(status) for status in set(statuses)} == {
        "pass": 171, "inexact": 37, "fail": 43, "nonfinite": 2, "unsupported": 2}


@pytest.mark.slow
def test_k_and_deselect_narrow_the_audit_and_expected_findings_are_xfail(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", expected=EXPECTED_FILE)
    done = pytester.runpytest_subprocess(*LARGE, "--bce-dtypes", "float32,float64", "-k", "float32 and lse_formula",
                                         "--deselect", f"bce::{LSE.format('sum', 'loss')}",
                                         "--bce-expected", "expected.toml", "-rA")
    done.assert_outcomes(passed=1, failed=1, xfailed=3, deselected=19, warnings=1)
    out = done.stdout.str()
    assert f"XFAIL bce::{LSE.format('mean', 'grad')} - expected finding 1: the lse formula" in out
    assert f"FAILED bce::{LSE.format('none', 'loss')}" in out
    assert "BceStaleEntryWarning: bce-harness: expected finding 2 (impl=numpy.logits) matched no failing row" in out
    rows = pd.read_parquet(next(pytester.path.rglob("conformance.parquet")))
    assert set(rows["dtype"]) == {"float32"} and set(rows["framework"]) == {"numpy"}  # float64 was not audited


@pytest.mark.slow
def test_a_stale_entry_fails_the_session_with_strict(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".toml", expected=EXPECTED_FILE)
    monkeypatch.setenv("BCE_STRICT", "1")
    done = pytester.runpytest_subprocess(*LARGE, "--bce-dtypes", "float32", "-k", "lse_formula and grad",
                                         "--bce-expected", "expected.toml")
    done.assert_outcomes(xfailed=3, deselected=9, warnings=1)
    assert done.ret == pytest.ExitCode.TESTS_FAILED
    done.stdout.fnmatch_lines(["bce-harness from the environment: BCE_STRICT=1",
                               "bce-harness: expected finding 2 (impl=numpy.logits) matched no failing row: stale? "
                               "(--bce-strict: the session fails)"])


def test_the_plugin_module_is_registered(pytestconfig: pytest.Config) -> None:
    assert Path(pytestconfig.pluginmanager.get_plugin("bce_harness").__file__).name == "pytest_plugin.py"
