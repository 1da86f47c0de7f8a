"""The case record: frozen master values, one correct rounding per dtype, a digest of the bytes."""

from __future__ import annotations

import numpy as np
import pytest

from cases import Case


def test_inputs_are_the_master_rounded_once_and_read_only() -> None:
    case = Case("c", "t", "logits", np.array([1 + 2**-8 + 2**-30, 0.1]), np.array([1.0, 0.0]), y_dtype="int64")
    bf16 = case.inputs("bfloat16")
    assert float(bf16.x[0]) == 1 + 2**-7  # rounded once from float64, not twice through float32
    assert bf16.y.dtype == np.int64 and bf16 is case.inputs("bfloat16")
    with pytest.raises(ValueError, match="read-only"):
        bf16.x[0] = 0
    with pytest.raises(ValueError, match="read-only"):
        case.x[0] = 0


def test_digests_follow_the_bytes() -> None:
    a = Case("c", "t", "logits", np.array([0.0]), np.array([1.0]))
    b = Case("c", "t", "logits", np.array([-0.0]), np.array([1.0]))
    assert a.digest() != b.digest() and a.digest() == Case("c", "u", "logits", np.zeros(1), np.ones(1)).digest()
    assert a.inputs("float32").digest() != a.inputs("float16").digest()


def test_a_bad_case_is_refused() -> None:
    with pytest.raises(ValueError, match="input_form 'odds'"):
        Case("c", "t", "odds", np.zeros(1), np.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        Case("c", "t", "logits", np.zeros(1), np.zeros(1), dtypes=("float8",))
    assert not Case("c", "t", "logits", np.zeros(1), np.zeros(1), dtypes=("float16",)).runs_in("float32")
