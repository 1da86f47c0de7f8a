"""The reproducer's body, with a stand-in framework call: it judges as the audit does, and its exit status says
whether the problem is still there (0) or gone (1)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from cases import float_format
from harness.findings.script import dtype_name, reproduce, ulp_distance

F32 = float_format("float32")
X, Y = np.array([-15.0, 0.0]), np.array([0.0, 1.0])
EXACT = 3.059022269256247e-07  # softplus(-15) rounded to float32


def _settings(**changes: Any) -> dict[str, Any]:
    base = {"label": "test", "check": "reference", "quantity": "loss", "reduction": "none", "worst": [0],
            "recorded": 0.0, "expected": EXACT, "recorded_error": "", "batch_size": 7, "pass_ulp": 4.0,
            "format": [F32.precision, F32.emin, F32.max_finite], "shape": list(np.shape(X))}
    return base | changes


def _returning(first: float) -> Any:
    def run(x: Any, y: Any, weight: Any, pos_weight: Any) -> tuple[np.ndarray, np.ndarray]:
        loss = np.full(np.shape(x), 0.6931471805599453)
        loss.ravel()[0] = first
        return loss, np.zeros(np.shape(x))
    return run


def test_ulp_distance_follows_the_judge() -> None:
    assert ulp_distance(1.0 + 3 * 2.0**-23, 1.0, F32.precision, F32.emin, F32.max_finite) == 3.0
    assert ulp_distance(math.nan, math.nan, F32.precision, F32.emin, F32.max_finite) == 0.0
    assert ulp_distance(math.inf, 1.0, F32.precision, F32.emin, F32.max_finite) == math.inf
    assert ulp_distance(math.inf, math.inf, F32.precision, F32.emin, F32.max_finite) == 0.0


def test_a_wrong_answer_reproduces_and_a_right_one_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    assert reproduce(_returning(0.0), None, X, Y, None, None, _settings()) == 0  # 2^23 ULP off: still there
    assert "reproduced: the framework is still off" in capsys.readouterr().out
    right = float(np.float32(EXACT)) * (1 + 2 * 2.0**-23)  # 2 ULP: within the pass tolerance
    assert reproduce(_returning(right), None, X, Y, None, None, _settings()) == 1
    assert "NOT reproduced" in capsys.readouterr().out


def test_raising_reproduces_only_the_recorded_error() -> None:
    def raising(*_: Any) -> Any:
        raise ValueError("shapes differ")

    assert reproduce(raising, None, X, Y, None, None, _settings(recorded_error="ValueError")) == 0
    assert reproduce(raising, None, X, Y, None, None, _settings(recorded_error="RuntimeError")) == 1


def test_a_result_of_the_wrong_shape_reproduces() -> None:
    def broadcast(x: Any, *_: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((2, 2)), np.zeros((2, 2))

    assert reproduce(broadcast, None, X, Y, None, None, _settings()) == 0


def test_batch_positions_must_have_the_same_bits_zeros_signs_included() -> None:
    def element_wise(x: Any, y: Any, *_: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.where(np.asarray(x) == 0, 0.0, 1.0), np.zeros(np.shape(x))

    def signed_zero_in_batches(x: Any, y: Any, *_: Any) -> tuple[np.ndarray, np.ndarray]:
        loss, grad = element_wise(x, y)
        return (np.where(loss == 0, -0.0, loss) if np.size(x) > 1 else loss), grad  # -0.0 inside a batch only

    batch = _settings(check="batch", worst=[], expected=math.nan)
    assert reproduce(element_wise, None, X, Y, None, None, batch) == 1
    assert reproduce(signed_zero_in_batches, None, X, Y, None, None, batch) == 0


def test_a_path_row_compares_compiled_with_eager() -> None:
    path = _settings(check="path")
    assert reproduce(_returning(EXACT), _returning(EXACT * (1 + 40 * 2.0**-23)), X, Y, None, None, path) == 0
    assert reproduce(_returning(EXACT), _returning(EXACT), X, Y, None, None, path) == 1


def test_a_compiled_path_of_another_dtype_reproduces_until_the_dtypes_agree() -> None:
    seen: list[str] = []

    def returning(dtype: str) -> Any:
        def run(x: Any, y: Any, weight: Any, pos_weight: Any) -> tuple[np.ndarray, np.ndarray]:
            seen.extend([dtype, "float32"])  # what the script's to_numpy hook records: the loss's, the gradient's
            return np.zeros(()), np.zeros(np.shape(x))
        return run

    settings = _settings(check="path", recorded_error="PathDtype", reduction="mean")
    assert reproduce(returning("bfloat16"), returning("float32"), X, Y, None, None, settings, seen=seen) == 0
    assert reproduce(returning("float32"), returning("float32"), X, Y, None, None, settings, seen=seen) == 1


def test_dtype_names_of_every_framework_read_as_numpy_s() -> None:
    class Holder:
        def __init__(self, dtype: str) -> None:
            self.dtype = dtype

    assert [dtype_name(Holder(t)) for t in ("torch.bfloat16", "<dtype: 'float16'>", "float32")] == [
        "bfloat16", "float16", "float32"]
