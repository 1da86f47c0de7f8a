"""`check_loss` (the fixture `bce_check`'s engine): your own BCE, in this process, against the exact reference,
with the frameworks' statuses; naive formulas fail where first principles say, stable ones pass."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from harness.api import UsageError, check_loss
from tests.own import losses

GOOD = {"pass", "inexact", "rejected", "unsupported"}


def _f32(value: mpmath.mpf) -> float:
    return float(np.float32(float(value)))


def _finding_at(check: object, x: float, y: float, quantity: str) -> dict:
    findings = check.findings  # type: ignore[attr-defined]
    chosen = findings[(findings["x"] == x) & (findings["y"] == y)
                      & findings["quantities"].map(lambda q: list(q) == [quantity])]
    assert len(chosen) == 1, findings[["title", "x", "y", "quantities"]].to_string()
    return chosen.iloc[0].to_dict()


def test_the_naive_numpy_formula_fails_at_large_logits() -> None:
    check = check_loss(losses.naive_numpy, dtypes=["float32"])
    assert not check.passed
    found = _finding_at(check, 40.0, 1.0, "loss")  # σ(40) rounds to 1: (1 − y)·log(1 − σ) = 0·(−inf)
    assert found["status"] == "nonfinite" and math.isnan(found["got"])
    assert found["expected"] == _f32(mpmath.log1p(mpmath.exp(-40)))  # softplus(−40) = 4.248e−18
    nonfinite = check.failing[check.failing["status"] == "nonfinite"]
    assert len(nonfinite) >= 3 and (nonfinite["x"].abs() >= 16).all()  # where σ saturates in float32
    summary = check.summary()
    assert summary.startswith("naive_numpy (numpy, logits): ") and "minimal: x=40.0, y=1.0 in float32" in summary
    assert "repro: naive_numpy(np.array([40.0], dtype=np.float32), np.array([1.0], dtype=np.float32))" in summary
    assert set(check.rows["quantity"]) == {"loss"}  # NumPy has no autodiff: no gradient rows
    assert set(check.rows["reduction"]) == {"none"}  # a per-element function


def test_a_stable_numpy_formula_passes_every_family_and_dtype() -> None:
    check = check_loss(losses.stable_numpy)
    assert check.passed, check.summary()
    assert set(check.rows["status"]) <= GOOD
    assert (check.rows["status"] == "pass").sum() > 100
    assert set(check.rows["dtype"]) == {"float64", "float32", "float16", "bfloat16"}
    worked = check.rows[(check.rows["case"] == "seed_logits") & (check.rows["dtype"] == "float64")]
    assert list(worked["status"]) == ["pass"]  # the worked example


def test_a_declared_reduction_and_a_weight_are_what_the_function_is_called_with() -> None:
    mean = check_loss(losses.stable_numpy_mean, reduction="mean", dtypes=["float64"], families=["large"])
    assert mean.passed and set(mean.rows["reduction"]) == {"mean"}
    weighted = check_loss(losses.weighted_numpy, dtypes=["float64"], families=["weights"])
    with pytest.warns(UserWarning, match="nothing was checked in float64: stable_numpy takes no (pos_)?weight"):
        unweighted = check_loss(losses.stable_numpy, dtypes=["float64"], families=["weights"])  # a dtype asked for
    assert weighted.passed
    assert (weighted.rows["status"] == "unsupported").sum() < (unweighted.rows["status"] == "unsupported").sum()
    said = set(unweighted.rows.loc[unweighted.rows["status"] == "unsupported", "error_message"])
    assert "stable_numpy takes no weight" in said


def test_the_naive_torch_formula_fails_in_loss_and_gradient() -> None:
    check = check_loss(losses.naive_torch, dtypes=["float32"])
    loss = _finding_at(check, 40.0, 1.0, "loss")
    grad = _finding_at(check, 40.0, 1.0, "grad")
    assert loss["status"] == grad["status"] == "nonfinite"
    assert grad["expected"] == _f32(-1 / (1 + mpmath.exp(40)))  # dl/dx = σ(x) − y = −σ(−40)
    assert "repro: naive_torch(torch.tensor([40.0], dtype=torch.float32), " in check.summary()


def test_a_stable_torch_formula_passes_with_its_gradient_and_leaves_torch_as_it_was() -> None:
    threads = torch.get_num_threads()
    check = check_loss(losses.logsigmoid_torch)
    assert check.passed, check.summary()
    grads = check.rows[check.rows["quantity"] == "grad"]
    assert (grads["status"] == "pass").sum() > 50 and set(grads["status"]) <= GOOD
    assert set(check.rows["reduction"]) == {"none"}
    assert torch.get_num_threads() == threads


def test_a_wrong_derivative_at_zero_is_found_from_first_principles() -> None:
    check = check_loss(losses.clamped_torch, dtypes=["float64"], families=["large", "labels"])
    found = _finding_at(check, 0.0, 0.0, "grad")
    assert found["got"] == 1.0 and found["expected"] == 0.5  # d/dx softplus(x) at 0 is σ(0) = 1/2


def test_further_derivatives_are_asked_for() -> None:
    check = check_loss(losses.logsigmoid_torch, dtypes=["float64"], quantities=["loss", "grad", "grad_y"])
    assert set(check.rows["quantity"]) == {"loss", "grad", "grad_y"}
    assert set(check.rows.loc[check.rows["quantity"] != "grad_y", "status"]) <= GOOD
    # ∂l/∂y = −x; the mask for y = 0 drops y·log σ(x)'s part, leaving −(−log σ(−x)) = log σ(0) = −log 2 at x = 0
    found = _finding_at(check, 0.0, 0.0, "grad_y")
    assert found["got"] == -math.log(2) and found["expected"] == 0.0


@pytest.mark.parametrize(("options", "fragment"), [
    ({"input_form": "scores"}, "input_form='scores': give 'logits' or 'probs'"),
    ({"framework": "mxnet"}, "framework='mxnet'"),
    ({"dtypes": ["float8"]}, "unknown dtype 'float8'"),
    ({"reduction": "max"}, "reduction='max'"),
    ({"families": ["nope"]}, "unknown family 'nope'"),
    ({"quantities": ["hessian"]}, "unknown quantity 'hessian'"),
    ({"devices": ["tpu"]}, "unknown device 'tpu'"),
])
def test_bad_options_are_usage_errors(options: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        check_loss(losses.stable_numpy, **options)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
