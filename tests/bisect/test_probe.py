"""What a bisection runs: the target's case audited by a release's interpreter (here this one: no downloads),
and bad input to the command."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from cases import Case
from harness.bisect import Target, bisect_target, target_of_finding
from harness.bisect.envs import Failed, Release
from harness.bisect.probe import audit_release
from implementations.torch_adapter import TorchAdapter
from tests.conftest import assert_usage_error, run_main

HERE = Release(Path(sys.executable), {})
LOG2 = 0.6931471805599453  # l(0, 1) = softplus(0) = log 2


@pytest.mark.slow  # an audit in a process of its own
def test_a_release_audits_the_case_and_reads_its_row_back() -> None:
    case = Case("x0_y1", "user", "logits", np.array([0.0]), np.array([1.0]))
    outcome = audit_release(HERE, "2.4.4", Target(case, "numpy.logits", "float64"))
    assert (outcome.status, outcome.got, outcome.exact, outcome.skipped) == ("pass", LOG2, LOG2, "")
    assert outcome.ulp is not None and 0 < outcome.ulp < 0.5  # log 2 correctly rounded: under half an ULP away
    broken = audit_release(Release(Path("/bin/false"), {}), "9.9", Target(case, "numpy.logits", "float64"))
    assert broken.status == "" and broken.skipped.startswith("the audit did not finish")


@pytest.mark.slow
def test_a_findings_minimal_element_is_what_each_release_audits(tmp_path: Path) -> None:
    """NumPy's log-sum-exp formula (no log1p) rounds l(−30, 0) = 9.4e-14 to 0 in float32: the finding's minimal
    example is that one element, and auditing it again gives the finding's own result."""
    from harness import audit

    case = Case("tails", "user", "logits", np.array([0.0, -30.0, 1.0]), np.array([1.0, 0.0, 1.0]), tags=("path",))
    audit(frameworks=["numpy"], dtypes=["float32"], cases=[case], out=tmp_path / "run", write_report=False)
    import pandas as pd

    findings = pd.read_parquet(tmp_path / "run" / "findings.parquet")
    finding = findings[findings["impls"].map(lambda impls: "numpy.lse_formula" in impls)
                       & (findings["minimal"] == "element")].iloc[0]
    target = target_of_finding(tmp_path / "run", finding["finding_id"])
    assert (target.impl, target.dtype, target.reduction, target.case.x.tolist()) == (
        "numpy.lse_formula", "float32", "none", [-30.0])
    assert target.case.tags == ("path",)  # kept: an API limited to its case's tag (a relation, a path) runs it
    outcome = audit_release(HERE, "2.4.4", target)
    assert (outcome.status, outcome.got) == (finding["status"], 0.0)
    assert outcome.exact == float(np.float32(np.log1p(np.exp(-30.0))))


def test_a_release_that_fails_to_install_is_skipped_with_pips_words() -> None:
    """The torch path on a fake release list: nothing is downloaded, the broken release is listed."""
    case = Case("x0_y1", "user", "logits", np.array([0.0]), np.array([1.0]))
    target = Target(case, "torch.logits", "float32")

    def install(version: str) -> Release | Failed:
        return Failed("pip could not install torch==2.11.0: no matching distribution") if version == "2.11.0" \
            else Release(Path(sys.executable), {"torch": version})

    def audit(release: Release, version: str, _target: Target):  # type: ignore[no-untyped-def]
        from harness.bisect import Outcome

        old = Version(version) < Version("2.12.0")
        return Outcome(version, "fail" if old else "pass", 0.0 if old else LOG2, LOG2, 1e7 if old else 0.0)

    found = bisect_target(target, ["2.9.0", "2.10.0", "2.11.0", "2.12.0", "2.13.0"], "torch", install, audit,
                          pages=TorchAdapter.release_pages)
    assert [o.version for o in found.skipped] == ["2.11.0"] and "no matching" in found.skipped[0].skipped
    assert found.last_same is not None and found.first_changed is not None
    assert (found.last_same.version, found.first_changed.version, found.between) == ("2.10.0", "2.12.0",
                                                                                      ["2.11.0"])
    assert found.first_changed.release_notes == "https://github.com/pytorch/pytorch/releases/tag/v2.12.0"
    assert found.first_changed.versions == {"torch": "2.12.0"}  # what the release's environment resolved


@pytest.mark.parametrize(("args", "fragment"), [
    (["--versions", "0.5.3..0.6.0"], "give RUN_DIR FINDING_ID, or --cases FILE"),
    (["runs/none", "abc", "--versions", "0.5.3,0.6.0"], "runs/none"),
    (["--cases", "CASES", "--impl", "jax.logits", "--versions", "0.5.3"], "two releases or more"),
    (["--cases", "CASES", "--impl", "jax.logits", "--versions", "0.5.3,0.6.0", "--framework", "torch"],
     "is jax's"),
    (["--cases", "CASES", "--impl", "jax.logits", "--case", "other", "--versions", "1,2"], "no case 'other'"),
    (["--cases", "CASES", "--impl", "jax.optx", "--versions", "0.5.3,0.6.0"], "--impl 'jax.optx' is not one of"),
    (["--cases", "CASES", "--impl", "jax.logits", "--mode", "jit", "--versions", "1,2"], "--mode 'jit'"),
    (["--cases", "CASES", "--impl", "jax.logits", "--companions", "optax<<1", "--versions", "1,2"],
     "not a pip requirement"),
    (["--cases", "CASES", "--impl", "jax.logits", "--versions", "0.6..0.5"], "older than the last"),
])
def test_bad_input_to_bisect_is_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    cases = tmp_path / "cases.json"
    cases.write_text('{"cases": [{"name": "c", "input_form": "logits", "x": [0.0], "y": [1.0]}]}')
    assert_usage_error(run_main("bisect", *(str(cases) if a == "CASES" else a for a in args)), fragment)
