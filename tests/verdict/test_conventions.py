"""Documented conventions: the shipped data file, each kind's prediction from first principles, and the rule that
a row is `deviation` only when the output matches the prediction (otherwise it stays `fail`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cases import Case, builtin_cases
from harness.conformance.plan import Cell
from harness.conformance.rows import Judge
from harness.verdict.conventions import convention_use, load_conventions, predict
from harness.verdict.oracle import reference
from implementations import Output, adapter_classes

CONVENTIONS = {c.id: c for c in load_conventions()}


def test_shipped_file_is_complete() -> None:
    assert set(CONVENTIONS) >= {"torch-bce-log-clamp", "torch-bce-grad-epsilon", "keras-epsilon-clip",
                                "keras-torch-epsilon-clip", "xla-cpu-flush-to-zero"}
    known = {impl.impl for cls in adapter_classes().values() for impl in cls.implementations}
    for convention in CONVENTIONS.values():
        assert convention.link.startswith("https://") and convention.reason
        assert set(convention.impls) <= known, convention.id


def test_malformed_file_names_the_entry() -> None:
    with pytest.raises(ValueError, match="compute_dtype is the implementation's"):
        load_conventions('[[convention]]\nid = "x"\nimpls = []\nquantity = "loss"\nkind = "prob_clip"\n'
                         'compute_dtype = "float32"\nreason = ""\nlink = ""\n')
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        load_conventions('[[convention]]\nid = "x"\nimpls = []\nquantity = "loss"\nkind = "log_clamp"\n'
                         'dtypes = ["float8"]\nreason = ""\nlink = ""\n')
    with pytest.raises(ValueError, match="entry #0 lacks 'kind'"):
        load_conventions('[[convention]]\nid = "x"\nimpls = []\nquantity = "loss"\nreason = ""\nlink = ""\n')
    with pytest.raises(ValueError, match="unknown kind 'magic'"):
        load_conventions('[[convention]]\nid = "x"\nimpls = []\nquantity = "loss"\nkind = "magic"\n'
                         'reason = ""\nlink = ""\n')


def _probs(p: list[float], y: list[float]) -> Case:
    return Case("c", "test", "probs", np.array(p), np.array(y))


def test_log_clamp_prediction() -> None:
    # -max(log 0, -100) = 100; -log 0.5 = log 2; y = 0 at p = 0: the term is absent (0)
    hi, _, acting = predict(CONVENTIONS["torch-bce-log-clamp"],
                            _probs([0.0, 0.5, 0.0], [1.0, 1.0, 0.0]).inputs("float32"), "probs", "none", "loss")
    np.testing.assert_allclose(hi, [100.0, math.log(2), 0.0], rtol=1e-15)
    assert acting.tolist() == [True, False, False]  # the clamp acts on log 0 only where its term is present


def test_grad_epsilon_prediction() -> None:
    # d/dp = (p - y) / max(p(1 - p), EPSILON), EPSILON = 1e-12 held as a float32 (9.9999998e-13, which is what
    # torch returns in float64 too: -1.000000004e12 at p = 0, y = 1)
    hi, _, acting = predict(CONVENTIONS["torch-bce-grad-epsilon"], _probs([0.0, 0.5], [1.0, 1.0]).inputs("float64"),
                            "probs", "none", "grad")
    np.testing.assert_allclose(hi, [-1 / float(np.float32(1e-12)), -2.0], rtol=1e-15)
    assert acting.tolist() == [True, False]


def test_keras_clip_prediction_in_float32() -> None:
    """Computed as Keras computes it, in float32: the clip bound 1e-7 rounds to 1.0000000116860974e-07, and
    1 − bound to 1 − 2^-23, so at p = y = 0 the loss is −log(1 − 2^-23) = 2^-23 + 2^-47 + 2^-70/3 + …, just past
    the midpoint 2^-23 + 2^-47: correctly rounded, 2^-23 + 2^-46 (TensorFlow's float32 log returns 2^-23, one ULP
    below, within the match's tolerance). log1p in float64 would give 1.0e-07, which Keras never computes. Where
    the clip does not act (p = 0.25) the prediction is the exact value: the clip has nothing to say there."""
    eps32 = float(np.float32(1e-7))
    inputs = _probs([0.0, 0.25, 0.0], [1.0, 1.0, 0.0]).inputs("float32")
    loss, _, _ = predict(CONVENTIONS["keras-epsilon-clip"], inputs, "probs", "none", "loss")
    assert loss.tolist() == [float(np.float32(-math.log(eps32))), 2 * math.log(2), 2.0**-23 + 2.0**-46]
    grad, _, acting = predict(CONVENTIONS["keras-epsilon-clip-grad"], inputs, "probs", "none", "grad")
    assert grad.tolist() == [0.0, -4.0, 0.0]  # zero outside the clip (p = 0), -y/p inside it
    assert acting.tolist() == [True, False, True]  # the clip acts where it moves p, not at 0.25


def test_keras_clip_prediction_in_the_compute_dtype() -> None:
    """A Keras loss class computes float64 inputs in float32: its prediction is float32's 1.19e-07 at p = y = 0,
    where the float64 computation of the function gives −log(1 − 1e-7) ≈ 1.00000005e-07."""
    inputs = _probs([0.0], [0.0]).inputs("float64")
    in_float32, _, _ = predict(CONVENTIONS["keras-epsilon-clip"], inputs, "probs", "none", "loss", "float32")
    in_float64, _, _ = predict(CONVENTIONS["keras-epsilon-clip"], inputs, "probs", "none", "loss")
    assert in_float32.tolist() == [2.0**-23 + 2.0**-46]
    assert in_float64[0] == pytest.approx(1.00000005e-07, rel=1e-8)


def test_keras_clip_is_deviation_at_p_equal_y() -> None:
    """What Keras returns on the float32 probability edges p = y ∈ {0, 1}: 2^-23 where the exact loss is 0."""
    case = _probs([0.0, 1.0, 0.5], [0.0, 1.0, 1.0])
    judge = Judge([case], {"tensorflow": adapter_classes()["tensorflow"]}, list(CONVENTIONS.values()))
    cell = Cell("tensorflow.keras_probs", 0, "float32", "cpu", "none")
    output = Output(np.array([2.0**-23, 2.0**-23, math.log(2)]), np.array([1.0, -1.0, -2.0]), "float32",
                    "float32", "api")
    loss = judge.result("tensorflow", cell, output, reference(case.inputs("float32"), "probs"))[0]
    assert (loss.status, loss.deviation) == ("deviation", "keras-epsilon-clip")


def _keras_float32(q: list[float], y: list[float]) -> np.ndarray:
    """What Keras's binary_crossentropy computes in float32: the clip, then log(q) and log(1 − q)."""
    q32, y32 = np.asarray(q, dtype=np.float32), np.asarray(y, dtype=np.float32)
    clipped = np.clip(q32, np.float32(1e-7), np.float32(1 - 1e-7))
    return (-(y32 * np.log(clipped) + (1 - y32) * np.log(1 - clipped))).astype(np.float64)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_keras_clip_accounts_only_where_it_clips(reduction: str) -> None:
    """At p = 1e-4, y = 0, Keras's float32 log(1 − p) loses ~2 000 ULP: its own formula's rounding, which the clip
    (acting at p = 0 beside it) must not explain, elementwise or in the mean."""
    case = _probs([0.0, 1e-4], [0.0, 0.0])
    judge = Judge([case], {"tensorflow": adapter_classes()["tensorflow"]}, list(CONVENTIONS.values()))
    per_element = _keras_float32([0.0, 1e-4], [0.0, 0.0])
    got = per_element if reduction == "none" else np.array(float(np.float32(np.mean(per_element))))
    output = Output(got, np.zeros(2), "float32", "float32", "api")
    cell = Cell("tensorflow.keras_probs", 0, "float32", "cpu", reduction)
    loss = judge.result("tensorflow", cell, output, reference(case.inputs("float32"), "probs"))[0]
    assert (loss.status, loss.deviation) == ("fail", "")
    assert loss.max_ulp_error > 1000
    if reduction == "none":
        assert loss.worst_index == "[1]" and "explains 1 element(s)" in loss.error_message


def test_keras_clip_does_not_explain_a_wrong_value_inside_the_clip() -> None:
    case = _probs([0.25], [1.0])
    judge = Judge([case], {"tensorflow": adapter_classes()["tensorflow"]}, list(CONVENTIONS.values()))
    cell = Cell("tensorflow.keras_probs", 0, "float32", "cpu", "none")
    output = Output(np.array([1.5]), np.array([-4.0]), "float32", "float32", "api")
    loss = judge.result("tensorflow", cell, output, reference(case.inputs("float32"), "probs"))[0]
    assert (loss.status, loss.deviation) == ("fail", "")


def test_keras_torch_clip_prediction_uses_log1p() -> None:
    """Keras on torch hands the clipped q_c to torch's binary_cross_entropy, whose 1 − q term is log1p(−q_c)
    (aten Loss.cpp). In float32 q_c = float32(1e-7) = 1.0000000116860974e-07 at p = 0, and −log1p(−q_c) =
    q_c + q_c²/2 + … = q_c + 5.0e-15 rounds up to the next float32, q_c + 2^-47 = 1.000000082740371e-07 (what
    keras.ops.binary_crossentropy returns on torch 2.13), where the log variant of TensorFlow, JAX and NumPy gives
    2^-23 + 2^-46. At p = y = 1 both compute log(q_c) of the upper bound 1 − 2^-23: 2^-23 + 2^-46 (torch's float32
    log returns 2^-23, one ULP below, within the match's tolerance)."""
    torch_clip, other_clip = CONVENTIONS["keras-torch-epsilon-clip"], CONVENTIONS["keras-epsilon-clip-backends"]
    assert torch_clip.parameters == {"epsilon": 1e-7, "log1p": True, "floor": -100.0}
    assert "log1p" not in other_clip.parameters and "keras_torch.ops_probs" not in other_clip.impls
    inputs = _probs([0.0, 1e-9, 1.0, 0.25], [0.0, 0.0, 1.0, 1.0]).inputs("float32")
    with_log1p, _, acting = predict(torch_clip, inputs, "probs", "none", "loss")
    with_log, _, _ = predict(other_clip, inputs, "probs", "none", "loss")
    q_c = np.float32(1e-7)
    assert float(q_c) == 1.0000000116860974e-07
    assert float(-np.log1p(-q_c)) == float(np.nextafter(q_c, np.float32(1))) == 1.000000082740371e-07
    assert with_log1p.tolist() == [1.000000082740371e-07, 1.000000082740371e-07, 2.0**-23 + 2.0**-46, 2 * math.log(2)]
    assert with_log.tolist() == [2.0**-23 + 2.0**-46, 2.0**-23 + 2.0**-46, 2.0**-23 + 2.0**-46, 2 * math.log(2)]
    assert acting.tolist() == [True, True, True, False]
    # in float64 the bound is 1e-7 itself: −log1p(−1e-7) = 1e-7 + 5e-15 + 3.3e-22 = 1.0000000500000033e-07
    in_float64, _, _ = predict(torch_clip, _probs([0.0], [0.0]).inputs("float64"), "probs", "none", "loss")
    assert in_float64.tolist() == [1.0000000500000033e-07]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_keras_torch_clip_floors_the_logs_where_the_upper_bound_rounds_to_one(dtype: str) -> None:
    """In float16 and bfloat16 1 − 1e-7 rounds to 1, so the clip leaves p = 1 alone; torch's kernel then raises
    log1p(−1) = −inf to −100: the loss at p = 1, y = 0 is 100 (what Keras on torch returns), which the floor
    accounts for although the clip did not move p. The log variant has no floor: +inf, as TensorFlow and JAX
    return, and nothing to account for. At p = 0, y = 0 the bound is 1e-7 in the dtype: float16's 2^-23
    (subnormal) and bfloat16's 1.0011717677116394e-07, and −log1p(−bound) rounds back to the bound."""
    inputs = _probs([1.0, 0.0, 1.0], [0.0, 0.0, 1.0]).inputs(dtype)
    loss, _, acting = predict(CONVENTIONS["keras-torch-epsilon-clip"], inputs, "probs", "none", "loss")
    bound = {"float16": 2.0**-23, "bfloat16": 1.0011717677116394e-07}[dtype]
    assert loss.tolist() == [100.0, bound, 0.0]
    assert acting.tolist() == [True, True, False]
    log_loss, _, log_acting = predict(CONVENTIONS["keras-epsilon-clip-backends"], inputs, "probs", "none", "loss")
    assert log_loss[0] == math.inf and not log_acting[0]


def test_keras_torch_clip_is_deviation_and_the_log_variant_is_not() -> None:
    """What keras.ops.binary_crossentropy returns on torch for float32 p = y = 0 and p = y = 1 (1.0000001e-07 and
    2^-23): `deviation` by keras-torch-epsilon-clip; TensorFlow's 2^-23 at p = y = 0 is 19% off that: `fail`."""
    case = _probs([0.0, 1.0, 0.5], [0.0, 1.0, 1.0])
    judge = Judge([case], {"keras_torch": adapter_classes()["keras_torch"]}, list(CONVENTIONS.values()))
    cell = Cell("keras_torch.ops_probs", 0, "float32", "cpu", "none")
    ref = reference(case.inputs("float32"), "probs")
    rows = []
    for at_zero in (1.000000082740371e-07, 2.0**-23):
        output = Output(np.array([at_zero, 2.0**-23, math.log(2)]), np.array([0.0, 0.0, -2.0]), "float32", "float32",
                        "api")
        rows.append(judge.result("keras_torch", cell, output, ref)[0])
    assert [(row.status, row.deviation) for row in rows] == [("deviation", "keras-torch-epsilon-clip"), ("fail", "")]


def test_flush_to_zero_prediction() -> None:
    # softplus(-90) = 8.19e-40 is subnormal in float32: flushed to 0; softplus(-30) = 9.36e-14 is not
    case = Case("f", "test", "logits", np.array([-90.0, -30.0]), np.array([0.0, 0.0]))
    hi, _, acting = predict(CONVENTIONS["xla-cpu-flush-to-zero"], case.inputs("float32"), "logits", "none", "loss")
    assert hi[0] == 0.0
    assert hi[1] == pytest.approx(9.357622968839737e-14, rel=1e-15)
    assert acting.tolist() == [True, False]


def test_a_prediction_of_a_mean_whose_sum_overflows_is_still_the_mean() -> None:
    # two float64 losses of 1.3482698511467367e308 (softplus(x) = x there): the sum is past the largest float64
    # (math.fsum raises on it), the mean is the loss itself; nothing is flushed, so it predicts the exact values
    x = np.full(2, 1.3482698511467367e308)
    inputs = Case("o", "test", "logits", x, np.zeros(2)).inputs("float64")
    mean = predict(CONVENTIONS["xla-cpu-flush-to-zero"], inputs, "logits", "mean", "loss")
    total = predict(CONVENTIONS["xla-cpu-flush-to-zero"], inputs, "logits", "sum", "loss")
    assert mean is not None and total is not None
    assert float(mean.hi) == 1.3482698511467367e308 and float(total.hi) == math.inf


@pytest.mark.parametrize("convention", ["xla-cpu-flush-to-zero", "tensorflow-cpu-flush-to-zero"])
def test_flush_to_zero_acts_where_the_hardware_flushes(convention: str) -> None:
    """float16 is computed in float32, where its subnormals are normal numbers: nothing flushes them."""
    ftz = CONVENTIONS[convention]
    impl = ftz.impls[0]
    assert [d for d in ("float64", "float32", "float16", "bfloat16") if ftz.applies_to(impl, "grad", d)] == [
        "float64", "float32", "bfloat16"]


def test_flush_to_zero_does_not_explain_a_float16_mean_gradient_of_zero() -> None:
    """A float16 mean over 65536 elements whose gradient is 0.0 (a count held in float16 is inf): each exact
    element, −σ(−x)/65536 ≈ −1.1e-5, is subnormal in float16, but no flush made it 0: still `fail`."""
    n = 65536
    case = Case("c", "test", "logits", np.full(n, 0.5), np.ones(n))
    judge = Judge([case], {"jax": adapter_classes()["jax"]}, list(CONVENTIONS.values()))
    cell = Cell("jax.logits", 0, "float16", "cpu", "mean")
    ref = reference(case.inputs("float16"), "logits")
    output = Output(np.array(ref.mean_hi), np.zeros(n), "float16", "float16", "api")
    rows = {row.quantity: row for row in judge.result("jax", cell, output, ref)}
    assert (rows["loss"].status, rows["grad"].status, rows["grad"].deviation) == ("pass", "fail", "")


def test_flush_to_zero_accounts_only_where_it_acts() -> None:
    """A Keras loss class computes float64 inputs in float32, where flush-to-zero acts below 1.18e-38: at x = −90,
    y = 0 the loss 8.19e-40 becomes 0.0, which the convention accounts for. At x = −0.6 nothing is subnormal, and
    the float32 rounding of the loss, though it matches the prediction in float32's ULPs, is no flush's doing: the
    row stays `fail` there (float32 precision for float64 inputs)."""
    case = Case("f", "test", "logits", np.array([-0.6, -90.0]), np.array([0.3, 0.0]))
    judge = Judge([case], {"tensorflow": adapter_classes()["tensorflow"]}, list(CONVENTIONS.values()))
    ref = reference(case.inputs("float64"), "logits")
    output = Output(np.array([float(np.float32(ref.loss_hi[0])), 0.0]), ref.grad_hi.copy(), "float64", "float64",
                    "api")
    loss = judge.result("tensorflow", Cell("tensorflow.keras_class_logits", 0, "float64", "cpu", "none"), output,
                        ref)[0]
    assert (loss.status, loss.worst_index) == ("fail", "[0]")
    assert "explains 1 element(s) of the documented convention tensorflow-cpu-flush-to-zero" in loss.error_message


def test_predictions_on_inputs_without_a_bce_value_or_without_elements() -> None:
    mismatched = Case("m", "test", "logits", np.zeros(3), np.zeros(3), weight=np.ones(2))
    for convention in CONVENTIONS.values():
        assert predict(convention, mismatched.inputs("float32"), "logits", "none", "loss") is None
    empty = _probs([], [])
    hi, _, acting = predict(CONVENTIONS["keras-epsilon-clip"], empty.inputs("float32"), "probs", "mean", "loss")
    assert np.isnan(hi) and not acting  # the mean of nothing is 0/0


def test_a_convention_is_stale_only_where_it_could_apply() -> None:
    """Flush-to-zero acts in float32, not float16: a float16-only audit leaves it unexercised, not stale; a Keras
    loss class computes float16 inputs in float32, where the TensorFlow flush applies."""
    conventions = [CONVENTIONS["xla-cpu-flush-to-zero"], CONVENTIONS["tensorflow-cpu-flush-to-zero"]]
    rows = pd.DataFrame({"impl": ["jax.logits", "tensorflow.keras_class_logits"], "dtype": ["float16", "float16"],
                         "deviation": ["", ""]})
    computes = {"tensorflow.keras_class_logits": "float32", "jax.logits": None}
    assert convention_use(conventions, rows, computes) == ({}, ["tensorflow-cpu-flush-to-zero"])
    assert convention_use(conventions, rows) == ({}, [])


def _judge_torch_probs(got: float) -> dict:
    case = _probs([0.0], [1.0])
    judge = Judge([case], {"torch": adapter_classes()["torch"]}, list(CONVENTIONS.values()))
    cell = Cell("torch.probs", 0, "float32", "cpu", "none")
    output = Output(np.array([got]), np.array([-1e12]), "float32", "float32", "api")
    rows = judge.result("torch", cell, output, reference(case.inputs("float32"), "probs"))
    _, stale = convention_use(list(CONVENTIONS.values()), pd.DataFrame(rows))
    return {row.quantity: row for row in rows} | {"stale": stale}


def test_matching_clamp_is_deviation_and_other_values_fail() -> None:
    matched = _judge_torch_probs(100.0)
    assert matched["loss"].status == "deviation"
    assert matched["loss"].deviation == "torch-bce-log-clamp"
    assert matched["grad"].status == "deviation"  # -1e12 is the epsilon-capped gradient
    missed = _judge_torch_probs(50.0)  # neither the exact +inf nor the clamp's 100
    assert missed["loss"].status == "nonfinite" and missed["loss"].deviation == ""
    assert missed["stale"] == ["torch-bce-log-clamp"]  # the loss convention matched nothing


@pytest.mark.slow
def test_the_audit_finds_the_documented_conventions(tmp_path) -> None:
    """Through the whole pipeline: torch's clamp and epsilon on the probability edges of float32."""
    import harness

    cases = [c for c in builtin_cases(families=["prob_edges"]) if c.name == "prob_edges_float32"]
    table = harness.audit(frameworks=["torch"], dtypes=["float32"], cases=cases, out=tmp_path / "run")
    probs = table[(table["impl"] == "torch.probs") & (table["check"] == "reference") & (table["mode"] == "eager")]
    deviations = set(probs.loc[probs["status"] == "deviation", "deviation"])
    assert deviations == {"torch-bce-log-clamp", "torch-bce-grad-epsilon"}
    profile = json.loads((tmp_path / "run" / "meta.json").read_text())["profile"]  # and where the time went
    eager = table[(table["mode"] == "eager") & (table["check"] == "reference")]
    assert profile["frameworks"]["torch"]["cells"]["eager"] == len(eager) // 2  # a cell's rows: loss and grad
    assert {"setup_s", "plan_s", "references_s", "judge_s", "consolidate_s", "report_s"} <= set(profile["main"])


def test_a_prediction_that_breaks_down_explains_nothing() -> None:
    """Keras's clip in bfloat16: 1 - 1e-7 rounds to 1, so at p = 1 the clip no longer protects the gradient.
    The convention's formula then gives NaN, exactly like Keras, but where the exact value is finite (-1) that
    is a real failure, not a documented convention."""
    case = _probs([1.0], [1.0])
    judge = Judge([case], {"tensorflow": adapter_classes()["tensorflow"]}, list(CONVENTIONS.values()))
    cell = Cell("tensorflow.keras_probs", 0, "bfloat16", "cpu", "none")
    output = Output(np.array([0.0]), np.array([math.nan]), "bfloat16", "bfloat16", "api")
    rows = judge.result("tensorflow", cell, output, reference(case.inputs("bfloat16"), "probs"))
    grad = next(row for row in rows if row.quantity == "grad")
    assert grad.status == "nonfinite" and grad.deviation == ""


def test_partly_explained_row_points_at_what_the_convention_does_not_explain() -> None:
    """Element 0 is torch's clamp (100 for an exact +inf); element 1 is simply wrong: the row stays
    nonfinite/fail and points at element 1, not at the explained element."""
    case = _probs([0.0, 0.5], [1.0, 1.0])
    judge = Judge([case], {"torch": adapter_classes()["torch"]}, list(CONVENTIONS.values()))
    cell = Cell("torch.probs", 0, "float32", "cpu", "none")
    output = Output(np.array([100.0, 0.75]), np.array([-1e12, -2.0]), "float32", "float32", "api")
    loss = judge.result("torch", cell, output, reference(case.inputs("float32"), "probs"))[0]
    assert loss.status == "fail" and loss.deviation == ""
    assert loss.worst_index == "[1]" and loss.got == 0.75
    assert "explains 1 element(s)" in loss.error_message


def test_a_weighted_average_predicts_sum_over_the_weights_sum() -> None:
    """np.average: Σ w·l / Σ w, here (2·ln 2 + 6·ln 2) / 8 = ln 2 at x = 0 with weights 2 and 6 (n = 2, where the
    harness's Σ w·l / n is 4 ln 2); the
    gradient w·(σ(0) − y) / Σ w; a weighted mean whose weights sum to n is not acted on."""
    (convention,) = [c for c in load_conventions() if c.kind == "weighted_average"]
    case = Case("w", "t", "logits", np.zeros(2), np.array([1.0, 0.0]), weight=np.array([2.0, 6.0]))
    loss = predict(convention, case.inputs("float64"), "logits", "mean", "loss")
    assert loss is not None and float(loss.hi) == pytest.approx(math.log(2), rel=1e-15) and bool(loss.acting)
    grad = predict(convention, case.inputs("float64"), "logits", "mean", "grad")
    assert grad is not None and grad.hi.tolist() == [2 * -0.5 / 8, 6 * 0.5 / 8]
    even = Case("w", "t", "logits", np.zeros(2), np.array([1.0, 0.0]), weight=np.array([0.5, 1.5]))
    assert not bool(predict(convention, even.inputs("float64"), "logits", "mean", "loss").acting)  # type: ignore[union-attr]
    assert predict(convention, case.inputs("float64"), "logits", "sum", "loss") is None
