"""Rows into findings, on hand-made rows whose causes are known: one cause is one finding whatever its scope and
numbers; different causes are different findings; the same failure in several frameworks is one finding."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cases import Case
from harness.findings import build_findings, finding_id, load_known_issues
from harness.findings.known import link_known_issues
from harness.store.schema import ConformanceRow
from harness.verdict.regions import failures

CASE = Case("tails", "t", "logits", np.array([-40.0, 0.5, 40.0, np.inf]), np.array([0.0, 0.3, 1.0, 1.0]))
CASES = {CASE.name: CASE}
# the exact values, rounded: softplus(-40) = 4.248354255291589e-18 (loss at x = -40, y = 0), the gradient
# -σ(-40) at x = 40, y = 1, and the loss 0 at x = +inf, y = 1
TINY = 4.248354255291589e-18


def _row(impl: str, dtype: str = "float64", reduction: str = "none", quantity: str = "loss",
         got: list[float] | None = None, expected: list[float] | None = None, status: str = "fail",
         **fields: Any) -> dict[str, Any]:
    """A row of CASE: `got` against `expected` per element, the failing ones grouped as the Judge groups them."""
    got_a, exp_a = np.array(got or [0.0, 1.0, 0.0, 0.0]), np.array(expected or [TINY, 1.0, 0.0, 0.0])
    bad = (got_a != exp_a) & ~(np.isnan(got_a) & np.isnan(exp_a))
    ulp = np.where(bad, np.where(np.isfinite(got_a), 1e30, np.inf), 0.0)  # the judge: inf for a NaN
    text = failures(bad, got_a, exp_a, ulp, CASE.x, CASE.y, "logits", dtype) if reduction == "none" else ""
    worst = int(np.argmax(bad)) if bad.any() else 0
    row = ConformanceRow(run_id="r", framework=impl.split(".")[0], impl=impl, input_form="logits", device="cpu",
                         dtype=dtype, out_dtype=dtype, case=CASE.name, family="t", reduction=reduction,
                         quantity=quantity, n=4, status=status, failures=text,
                         worst_index=json.dumps([worst]) if reduction == "none" else "",
                         worst_x=float(CASE.x[worst]) if reduction == "none" else math.nan,
                         worst_y=float(CASE.y[worst]) if reduction == "none" else math.nan,
                         got=float(got_a[worst]), expected=float(exp_a[worst]), max_ulp_error=1e30)
    return replace(row, **fields).with_id().record()


def _findings(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return build_findings(pd.DataFrame(rows), CASES)[0]


def test_one_cause_in_four_dtypes_and_three_reductions_is_one_finding() -> None:
    rows = [_row("torch.logits", dtype) for dtype in ("float64", "float32", "float16", "bfloat16")]
    rows += [_row("torch.logits", reduction=r, got=[0.25], expected=[0.25 + TINY / 4]) for r in ("mean", "sum")]
    found = _findings(rows)
    assert len(found) == 1
    finding = found.iloc[0]
    assert (finding["kind"], finding["family"], finding["region"], finding["failure"]) == (
        "precision", "loss", "x ≪ 0, y = 0", "lost")
    assert finding["rows"] == 6 and finding["dtypes"] == ["bfloat16", "float16", "float32", "float64"]
    assert finding["reductions"] == ["mean", "none", "sum"]
    # the minimal example: one element, in the widest dtype that fails
    assert (finding["x"], finding["y"], finding["got"], finding["expected"]) == (-40.0, 0.0, 0.0, TINY)
    assert finding["example_dtype"] == "float64" and finding["minimal"] == "element"
    assert finding["title"].startswith("loss is 0 where the exact value is 4.24835e-18")


def test_two_causes_on_one_case_are_two_findings() -> None:
    """The loss lost at x = -40 and NaN at x = +inf, y = 1, in one row: two findings, both listing the row."""
    row = _row("torch.logits", got=[0.0, 1.0, 0.0, math.nan], status="nonfinite")
    found = _findings([row])
    assert sorted(zip(found["kind"], found["region"], found["failure"], strict=True)) == [
        ("nonfinite", "x = +inf, y = 1", "NaN"), ("precision", "x ≪ 0, y = 0", "lost")]
    assert all(ids == [row["row_id"]] for ids in found["row_ids"])
    assert found.iloc[0]["kind"] == "precision"  # ordinary inputs before infinite ones


def test_one_input_failing_in_three_frameworks_is_one_finding_with_three() -> None:
    rows = [_row(impl, got=[TINY, 1.0, 0.0, math.nan], status="nonfinite")
            for impl in ("torch.logits", "tensorflow.logits", "jax.logits")]
    found = _findings(rows)
    assert len(found) == 1 and found.iloc[0]["frameworks"] == ["jax", "tensorflow", "torch"]
    assert found.iloc[0]["title"].startswith("loss is NaN where the exact value is 0 at x = inf, y = 1")


def test_ids_hold_across_scopes_and_numbers() -> None:
    everything = [_row(impl, dtype) for impl in ("torch.logits", "tensorflow.logits")
                  for dtype in ("float64", "float32")]
    narrower = [row for row in everything if row["dtype"] == "float32"]  # --dtypes float32
    one_framework = [row for row in everything if row["framework"] == "torch"]  # --frameworks torch
    other_numbers = [_row("torch.logits", got=[1e-30, 1.0, 0.0, 0.0])]  # another CPU: another wrong value
    ids = [set(_findings(rows)["finding_id"]) for rows in (everything, narrower, one_framework, other_numbers)]
    assert ids[0] == ids[1] == ids[2] == ids[3] == {finding_id("precision", "loss", "x ≪ 0, y = 0", "lost")}
    gradient = _row("torch.logits", quantity="grad", got=[0.0, 0.0, 0.0, 0.0], expected=[TINY, 0.0, -TINY, 0.0])
    assert set(_findings([gradient])["finding_id"]).isdisjoint(ids[0])  # another quantity: another cause


def test_documented_conventions_rank_after_every_alarm() -> None:
    rows = [_row("torch.probs", status="deviation", deviation="torch-bce-log-clamp", got=[100.0, 1.0, 0.0, 0.0],
                 expected=[math.inf, 1.0, 0.0, 0.0]),
            _row("torch.logits", got=[0.0, 1.0, 0.0, math.nan], status="nonfinite")]
    found = _findings(rows)
    assert list(found["status"]) == ["fail", "nonfinite", "deviation"] and list(found["rank"]) == [1, 2, 3]
    assert found.iloc[2]["convention"] == "torch-bce-log-clamp" and found.iloc[2]["kind"] == "convention"


def test_known_issues_link_by_region_and_stale_entries_are_reported() -> None:
    known = load_known_issues()
    found = _findings([_row("torch.logits", quantity="grad", got=[0.0, 0.0, 0.0, 0.0],
                            expected=[0.0, 0.0, -TINY, 0.0])])
    links, stale = link_known_issues(found, known, {("torch.logits", "float64"), ("torch.probs", "float64")})
    assert links == [["https://github.com/pytorch/pytorch/issues/195529",
                      "https://github.com/pytorch/pytorch/issues/195677"]]
    assert "https://github.com/pytorch/pytorch/issues/102894" in stale  # torch ran, NaN at +inf not found
    assert "https://github.com/pytorch/pytorch/issues/31453" in stale  # torch.probs ran, its clamp not found
    assert "https://github.com/tensorflow/tensorflow/issues/75256" not in stale  # tensorflow did not run
    assert "https://github.com/jax-ml/jax/issues/16200" not in stale  # nor did jax
    float16 = link_known_issues(found, known, {("tensorflow.logits", "float32")})[1]
    assert "https://github.com/tensorflow/tensorflow/issues/115732" not in float16  # a float16 mean: no float16 ran
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        load_known_issues('[[issue]]\nurl = "u"\nstate = "open"\nreason = "r"\nmatch = { colour = "red" }\n')


def test_a_compiled_mean_joins_the_eager_element_wise_problem() -> None:
    """Compiled modes run only the mean: their mean shares the eager `none` row's finding."""
    rows = [_row("torch.logits"), _row("torch.logits", reduction="mean", mode="torch.compile", got=[0.25],
                                       expected=[0.25 + TINY / 4])]
    found = _findings(rows)
    assert len(found) == 1 and found.iloc[0]["modes"] == ["eager", "torch.compile"]
    assert found.iloc[0]["elements"] == 1  # the shared element counted once


def test_an_alarm_is_never_filed_under_a_convention() -> None:
    """A mean that fails where its element-wise row is a documented deviation: its own (reduction) finding."""
    rows = [_row("torch.probs", status="deviation", deviation="torch-bce-log-clamp", got=[100.0, 1.0, 0.0, 0.0],
                 expected=[math.inf, 1.0, 0.0, 0.0]),
            _row("torch.probs", reduction="mean", got=[7.0], expected=[math.inf])]
    found = _findings(rows)
    assert sorted(found["kind"]) == ["convention", "reduction"]
    assert found.set_index("kind").loc["reduction", "status"] == "nonfinite"


def test_a_narrower_result_keeps_its_nonfinite_problems() -> None:
    """A float32 result for float64 inputs: its lost digits are the dtype finding's, a NaN is its own."""
    row = _row("tensorflow.keras_class_logits", got=[1e-20, 1.0, 0.0, math.nan], status="fail",
               error_type="OutDtype", out_dtype="float32")
    found = _findings([row])
    assert sorted(zip(found["kind"], found["region"], strict=True)) == [
        ("dtype", "narrower result"), ("nonfinite", "x = +inf, y = 1")]


def test_rows_of_an_older_run_stand_for_their_worst_element() -> None:
    """Schema 1 has no `failures`: a failing row's worst element makes its finding; nothing makes none."""
    older = pd.DataFrame([_row("torch.logits")]).drop(columns="failures")
    assert list(_findings(older.to_dict(orient="records"))["region"]) == ["x ≪ 0, y = 0"]
    passing = _row("torch.logits", got=[TINY, 1.0, 0.0, 0.0], status="fail", error_type="OutDtype",
                   out_dtype="float64")  # a row that fails for its dtype alone: no element finding
    assert list(_findings([passing])["kind"]) == ["dtype"]
    assert build_findings(pd.DataFrame(), CASES)[0].empty


def test_an_identity_broken_by_a_side_s_own_problem_is_an_attribute_of_that_finding() -> None:
    mirror = Case("tails~mirror", "t", "logits", -CASE.x, 1.0 - CASE.y, tags=("partner:symmetry:tails",))
    side = _row("torch.logits")  # x = -40, y = 0: the loss is lost
    relation = _row("torch.logits", check="relation", relation="symmetry", got=[0.0, 1.0, 0.0, 0.0],
                    expected=[TINY, 1.0, 0.0, 0.0])
    found = build_findings(pd.DataFrame([side, relation]), {**CASES, mirror.name: mirror})[0]
    assert len(found) == 1
    assert found.iloc[0]["checks"] == ["reference", "relation"] and found.iloc[0]["rows"] == 2
    # a failing row of the same implementation that is not a side of the pair (another case) is not joined
    other = _row("torch.logits", case="elsewhere")
    apart = build_findings(pd.DataFrame([other, relation]), {**CASES, mirror.name: mirror})[0]
    assert sorted(apart["kind"]) == ["precision", "relation"]


def test_an_identity_broken_while_both_sides_pass_is_a_finding_of_its_own() -> None:
    relation = _row("torch.logits", check="relation", relation="symmetry", got=[0.0, 1.5, 0.0, 0.0],
                    expected=[0.0, 1.0, 0.0, 0.0])
    found = _findings([relation])
    assert len(found) == 1
    finding = found.iloc[0]
    assert finding["kind"] == "relation" and finding["region"].startswith("symmetry, ")
    assert finding["title"].startswith("symmetry does not hold: loss is 1.5 where the identity gives 1")


def test_derivatives_are_findings_of_their_own_quantity() -> None:
    grad2 = _row("jax.logits", quantity="grad2", got=[0.0, 1.0, 0.0, 0.0], expected=[TINY, 1.0, 0.0, 0.0])
    loss = _row("jax.logits")
    found = _findings([grad2, loss])
    assert sorted(found["family"]) == ["grad2", "loss"]
    assert "second derivative is 0 where the exact value is 4.24835e-18" in " ".join(found["title"])


def test_digits_lost_to_a_narrower_computation_are_that_computation_s_finding() -> None:
    """Keras's loss class computes float64 inputs in float32: a float64 gradient right to float32's precision is
    the narrower computation's finding; one wrong even in float32 stays a finding of its own."""
    float32_right = float(np.float32(0.1)) + 1e-12  # 1 ULP of float32 from 0.1, 2^26 ULP of float64
    as_float32 = _row("tensorflow.keras_class_logits", quantity="grad", got=[float32_right, 1.0, 0.0, 0.0],
                      expected=[0.1, 1.0, 0.0, 0.0])
    found = _findings([as_float32])
    assert list(found["region"]) == ["narrower computation"] and found.iloc[0]["kind"] == "dtype"
    assert found.iloc[0]["title"].startswith("computes in float32 what its float64 inputs ask for")
    wrong = _row("tensorflow.keras_class_logits", quantity="grad", got=[0.0, 1.0, 0.0, 0.0])
    assert list(_findings([wrong])["kind"]) == ["precision"]  # 0.0 for 4.2e-18 is lost in float32 too
