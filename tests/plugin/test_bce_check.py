"""The fixture `bce_check` in a throwaway project, as a user writes it: a naive NumPy BCE fails with its findings
(the minimal element at large |x|, got against exact, the call that shows it), a stable one passes."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

pytest_plugins = ["pytester"]

TESTS = '''
import numpy as np


def naive(x, y):
    s = 1 / (1 + np.exp(-x))
    return -(y * np.log(s) + (1 - y) * np.log(1 - s))


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def stable(x, y):
    if x.shape != y.shape:
        raise ValueError("x and y shapes differ")
    if y.dtype.kind in "biu":
        y = y.astype(x.dtype)
    return np.where(y == 0, 0, y * softplus(-x)) + np.where(y == 1, 0, (1 - y) * softplus(x))


def test_naive(bce_check):
    bce_check(naive, dtypes=("float32",), families=("large", "labels"))


def test_bad_option(bce_check):
    bce_check(stable, input_form="scores")


def test_stable(bce_check):
    result = bce_check(stable, dtypes=("float32", "float64"), families=("large", "labels"))
    assert result.passed and (result.rows["status"] == "pass").sum() == 8
'''


def test_bce_check_fails_a_naive_loss_with_its_findings_and_passes_a_stable_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_loss=TESTS)
    done = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    done.assert_outcomes(passed=1, failed=2)
    text = done.stdout.str()
    assert "naive (numpy, logits): " in text and "failing finding(s)" in text
    # σ(17) rounds to 1 in float32: (1 − y)·log(1 − σ) = 0·(−inf) at y = 1; the exact loss is softplus(−17)
    exact = float(np.float32(float(mpmath.log1p(mpmath.exp(-17)))))
    assert f"minimal: x=17.0, y=1.0 in float32 (none): got float('nan'), exact {exact!r}" in text
    assert "repro: naive(np.array([17.0], dtype=np.float32), np.array([1.0], dtype=np.float32))" in text
    assert "bce_check: test_loss:stable: unknown form 'scores'; give one of logits, probs" in text
    assert "Traceback" not in text
