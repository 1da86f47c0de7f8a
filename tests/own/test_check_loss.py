"""`check_loss` (the fixture `bce_check`'s engine): your own BCE, in this process, against the exact reference,
with the frameworks' statuses; naive formulas fail where first principles say, stable ones pass."""

from __future__ import annotations

import functools
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
    judged = check.rows[check.rows["status"] != "unsupported"]
    assert set(judged["quantity"]) == {"loss"}  # NumPy has no autodiff: its gradient is not checked, but said
    no_gradient = check.rows[check.rows["error_type"] == "NoGradient"]
    assert len(no_gradient) == len(judged) and set(no_gradient["quantity"]) == {"grad"}
    assert set(check.rows["reduction"]) == {"none"}  # a per-element function


def test_a_stable_numpy_formula_passes_every_family_and_dtype() -> None:
    check = check_loss(losses.stable_numpy)
    assert check.passed, check.summary()
    assert set(check.rows["status"]) <= GOOD
    assert (check.rows["status"] == "pass").sum() > 100
    assert set(check.rows["dtype"]) == {"float64", "float32", "float16", "bfloat16"}
    worked = check.rows[(check.rows["case"] == "seed_logits") & (check.rows["dtype"] == "float64")
                        & (check.rows["quantity"] == "loss")]
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


def test_a_keyword_catch_all_is_not_a_reduction_and_a_partial_or_callable_object_is_read_through() -> None:
    check = check_loss(losses.catch_all, dtypes=["float64"], families=["large", "weights"])
    assert set(check.rows["reduction"]) == {"none"}  # **kwargs: a weight, never a reduction
    assert "unsupported" not in set(check.rows.loc[check.rows["quantity"] == "loss", "status"])
    # it takes pos_weight too, and ignores it: at y = 1 the loss is p·softplus(−x), so with p = 1/2 it is doubled
    failing = check.failing
    assert len(failing) >= 1 and (failing["pos_weight"] == 0.5).all() and (failing["y"] == 1.0).all()
    assert np.allclose(failing["got"], 2 * failing["expected"], rtol=1e-12)
    partial = check_loss(functools.partial(losses.clamped_torch), dtypes=["float64"], families=["large"])
    assert partial.spec.framework == "torch" and partial.name == "clamped_torch"
    assert set(partial.rows["quantity"]) == {"loss", "grad"}
    called = check_loss(losses.TorchLoss(), dtypes=["float64"], families=["large"])
    assert called.spec.framework == "torch" and called.passed


def test_a_kernel_without_a_backward_has_its_loss_judged() -> None:
    check = check_loss(losses.forward_only_torch, dtypes=["float32"], families=["large", "labels"])
    grads = check.rows[check.rows["quantity"] == "grad"]
    assert set(grads["status"]) == {"error"} and set(grads["error_type"]) == {"RuntimeError"}
    assert grads["error_message"].str.contains("does not require grad").all()  # torch's own words
    losses_only = check_loss(losses.forward_only_torch, dtypes=["float32"], families=["large", "labels"],
                             quantities=["loss"])
    assert losses_only.passed and set(losses_only.rows["quantity"]) == {"loss"}
    assert (losses_only.rows["status"] == "pass").sum() > 0 and set(losses_only.rows["status"]) <= GOOD


@pytest.mark.parametrize(("options", "fragment"), [
    ({"input_form": "scores"}, "stable_numpy: unknown form 'scores'; give one of logits, probs"),
    ({"framework": "mxnet"}, "unknown framework 'mxnet'; give one of numpy, torch, jax, tensorflow"),
    ({"dtypes": ["float8"]}, "unknown dtype 'float8'"),
    ({"reduction": "max"}, "unknown reduction 'max'; give one of none, mean, sum"),
    ({"fail_on": "failed"}, "unknown status of fail_on 'failed'"),
    ({"families": ["nope"]}, "unknown family 'nope'"),
    ({"quantities": ["hessian"]}, "unknown quantity 'hessian'"),
    ({"devices": ["tpu"]}, "unknown device 'tpu'"),
])
def test_bad_options_are_usage_errors(options: dict, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_loss(losses.stable_numpy, **options)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
