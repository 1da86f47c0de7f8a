"""Rows of the further derivatives: judged against their exact values with the loss's statuses; what a framework
cannot differentiate is `unsupported` with its reason, and cases without the tag have none."""

from __future__ import annotations

import math

import numpy as np

from cases import Case
from harness.conformance.plan import Cell, derivative_quantities
from harness.conformance.rows import Judge
from harness.verdict.derivatives import derivative_reference
from harness.verdict.oracle import reference
from implementations import Derivative, Output, adapter_classes

ADAPTERS = adapter_classes()
X = np.array([[0.0, 2.0], [-3.0, 40.0]])
Y = np.array([[0.0, 1.0], [0.25, 1.0]])
CASE = Case("d", "test", "logits", X, Y, weight=np.array([0.5, 2.0]), tags=("derivative",))
PLAIN = Case("p", "test", "logits", X, Y)


def _judge(case: Case = CASE) -> Judge:
    judge = Judge([case], {"torch": ADAPTERS["torch"]})
    judge.references[judge.reference_key(Cell("torch.logits", 0, "float64", "cpu", "sum"))] = reference(
        case.inputs("float64"), "logits")
    judge.derivative_references[(0, "float64")] = derivative_reference(case.inputs("float64"), "logits")
    return judge


def _exact(name: str, reduction: str, scale: float = 1.0) -> Derivative:
    want = derivative_reference(CASE.inputs("float64"), "logits").quantity(name, reduction)
    return Derivative(np.asarray(want.hi + want.lo) * scale, "float64")


def _rows(judge: Judge, reduction: str, derivatives: dict[str, Derivative]) -> dict[str, str]:
    ref = reference(CASE.inputs("float64"), "logits")
    loss, grad = ref.loss(reduction)[0], ref.grad(reduction)[0]
    output = Output(np.asarray(loss), np.asarray(grad), "float64", "float64", "api", derivatives=derivatives)
    rows = judge.result("torch", Cell("torch.logits", 0, "float64", "cpu", reduction), output)
    return {row.quantity: row.status for row in rows}


def test_which_derivatives_a_case_has() -> None:
    impl = ADAPTERS["torch"].implementation("torch.logits")
    assert derivative_quantities(impl, CASE) == ("grad_fwd", "grad_y", "grad_weight", "grad2")
    assert derivative_quantities(impl, PLAIN) == ()
    assert derivative_quantities(impl, CASE, mode="torch.compile") == ()  # eager only
    softmax = ADAPTERS["torch"].implementation("torch.softmax2")
    assert derivative_quantities(softmax, CASE) == ()  # an API here for a relation: its loss and gradient only


def test_exact_derivatives_pass_under_none_and_mean_and_sum_has_none() -> None:
    names = ("grad_fwd", "grad_y", "grad_weight", "grad2")
    for reduction in ("none", "mean"):
        statuses = _rows(_judge(), reduction, {name: _exact(name, reduction) for name in names})
        assert statuses == {"loss": "pass", "grad": "pass", **dict.fromkeys(names, "pass")}, reduction
    # those of `none` are the sum's: `sum` judges its loss and gradient only
    assert _rows(_judge(), "sum", {name: _exact(name, "sum") for name in names}) == {"loss": "pass", "grad": "pass"}


def test_a_wrong_second_derivative_fails_and_the_others_do_not_move() -> None:
    derivatives = {name: _exact(name, "none") for name in ("grad_fwd", "grad_y", "grad_weight")}
    derivatives["grad2"] = _exact("grad2", "none", scale=1.0 + 1e-9)  # ≈ 9000 ULP in float64
    statuses = _rows(_judge(), "none", derivatives)
    assert statuses["grad2"] == "fail" and statuses["grad_y"] == "pass"


def test_what_the_framework_cannot_take_is_unsupported_with_the_reason() -> None:
    why = Derivative(None, status="unsupported", error_type="Unsupported", message="no derivative for weight")
    derivatives = {name: _exact(name, "none") for name in ("grad_fwd", "grad_y", "grad2")} | {"grad_weight": why}
    judge = _judge()
    ref = reference(CASE.inputs("float64"), "logits")
    output = Output(ref.loss_hi, ref.grad_hi, "float64", "float64", "api", derivatives=derivatives)
    rows = {row.quantity: row for row in judge.result("torch", Cell("torch.logits", 0, "float64", "cpu", "none"),
                                                      output)}
    assert rows["grad_weight"].status == "unsupported"
    assert rows["grad_weight"].error_message == "no derivative for weight"


def test_grad_fwd_of_the_mean_is_one_number_the_exact_sum_over_n() -> None:
    want = derivative_reference(CASE.inputs("float64"), "logits").quantity("grad_fwd", "mean")
    assert want.hi.shape == () and want.reduced_over == 4
    sig = [1 / (1 + math.exp(-v)) for v in X.ravel()]
    w = [0.5, 2.0, 0.5, 2.0]
    direct = sum(wi * ((1 - yi) * s - yi * (1 - s)) for wi, yi, s in zip(w, Y.ravel(), sig, strict=True)) / 4
    assert abs(float(want.hi) - direct) <= 1e-15


def test_a_cell_without_an_answer_gets_every_quantity_s_row() -> None:
    rows = _judge().status_rows("torch", Cell("torch.logits", 0, "float64", "cpu", "mean"), "crashed")
    assert sorted(row.quantity for row in rows) == ["grad", "grad2", "grad_fwd", "grad_weight", "grad_y", "loss"]
