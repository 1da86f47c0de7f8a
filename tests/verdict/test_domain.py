"""BCE's domain: where raising is the right answer."""

from __future__ import annotations

import numpy as np
import pytest

from cases import Case, CaseInputs
from harness.verdict.domain import domain_violation, shape_problem


def _inputs(form: str, x: list[float], y: list[float], **extra: np.ndarray) -> CaseInputs:
    return Case("d", "t", form, np.array(x), np.array(y), **extra).inputs("float32")


@pytest.mark.parametrize(("form", "x", "y", "why"), [
    ("logits", [0.0, np.inf, -np.inf], [0.0, 1.0, 1.0], None),  # infinite logits are inside it
    ("logits", [0.0, np.nan], [0.0, 1.0], "NaN in x"),
    ("logits", [0.0], [1.5], "label outside [0, 1]"),
    ("probs", [0.0, 1.0], [1.0, 0.0], None),
    ("probs", [1.5], [1.0], "probability outside [0, 1]"),
])
def test_the_domain(form: str, x: list[float], y: list[float], why: str | None) -> None:
    assert domain_violation(_inputs(form, x, y), form) == why


def test_shapes_must_match_and_weights_broadcast_to_x() -> None:
    assert shape_problem(_inputs("logits", [0.0, 1.0], [0.0])) == "x.shape=(2,) and y.shape=(1,) differ"
    wide = _inputs("logits", [0.0, 1.0], [0.0, 1.0], weight=np.ones(3))
    assert shape_problem(wide) == "weight.shape=(3,) does not broadcast to x.shape=(2,)"
    assert shape_problem(_inputs("logits", [0.0, 1.0], [0.0, 1.0], pos_weight=np.ones(1))) is None
