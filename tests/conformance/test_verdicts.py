"""True verdicts through the real frameworks, in this process: each of the four places where the audit's verdict
was wrong before, judged by `Judge` with the shipped conventions as the audit judges it.

Expected values: at x = 40, y = 1 the gradient is −σ(−40) = −4.248354255291589e-18 (mpmath), exact by meaning
in the label; over 65536 float16 elements a mean divides by 65536, which float16 cannot hold (its largest finite
number is 65504, and every integer from 65520 on rounds to inf).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from cases import Case, builtin_cases
from harness.conformance.plan import Cell
from harness.conformance.rows import Judge
from harness.store.schema import ConformanceRow
from harness.verdict.conventions import load_conventions
from harness.verdict.oracle import reference
from tests.frameworks import ADAPTERS, loaded_adapter


@functools.cache
def _count_edge() -> Case:
    return next(c for c in builtin_cases(families=["scale"]) if c.name == "scale_logits_n65536")


def _rows(impl: str, case: Case, dtype: str, reduction: str) -> dict[str, ConformanceRow]:
    """The audit's reference rows (loss, grad) for one implementation on one case, by quantity."""
    name = impl.split(".")[0]
    adapter = loaded_adapter(name)
    inputs = case.inputs(dtype)
    output = adapter.compute(adapter.implementation(impl), inputs.arrays(), reduction, "cpu")
    judge = Judge([case], {name: ADAPTERS[name]}, load_conventions())
    rows = judge.result(name, Cell(impl, 0, dtype, "cpu", reduction), output, reference(inputs, case.input_form))
    return {row.quantity: row for row in rows}


@pytest.mark.parametrize("impl", ["jax.logits", "jax.log_sigmoid", "numpy.lse_formula", "torch.logits"])
def test_a_float16_mean_over_65536_elements_passes_through_the_frameworks_mean(impl: str) -> None:
    """jnp.mean, np.mean's float32 accumulation, torch's reduction: the mean users call is right. A mean that
    divided by a float16 count (as the adapters once did by hand) gave NaN and a gradient of 0.0."""
    rows = _rows(impl, _count_edge(), "float16", "mean")
    assert (rows["loss"].status, rows["grad"].status) == ("pass", "pass"), rows


def test_tensorflows_float16_mean_is_its_own_alarm_and_no_convention_explains_it() -> None:
    """tf.reduce_mean sums float16 in float16 (past 65504: inf) and divides by a float16 count (inf from 65520):
    loss NaN, gradient 0.0 (tensorflow#115732). A real finding, and float16 subnormals are not flushed, so the
    flush-to-zero convention must not claim the gradient."""
    rows = _rows("tensorflow.logits", _count_edge(), "float16", "mean")
    assert rows["loss"].status == "nonfinite" and np.isnan(rows["loss"].got)
    assert (rows["grad"].status, rows["grad"].got, rows["grad"].deviation) == ("fail", 0.0, "")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_gradient_at_40_with_label_1_fails(dtype: str) -> None:
    """torch returns 0.0 for d/dx at x = 40, y = 1 (σ(40) − 1 cancels; pytorch#195529): a label of exactly 1 has
    no rounding slack, so this is `fail`, not `inexact`. JAX and TensorFlow compute σ(−40) and pass."""
    case = Case("x40", "t", "logits", np.array([40.0]), np.array([1.0]))
    torch_grad = _rows("torch.logits", case, dtype, "none")["grad"]
    assert (torch_grad.status, torch_grad.got) == ("fail", 0.0)
    assert torch_grad.expected == pytest.approx(-4.248354255291589e-18, rel=1e-7)
    if dtype == "float64":
        for impl in ("jax.logits", "tensorflow.logits"):
            assert _rows(impl, case, dtype, "none")["grad"].status == "pass", impl


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_clip_at_p_equal_y_is_a_deviation(dtype: str) -> None:
    """keras.losses.binary_crossentropy at p = y ∈ {0, 1}: its ε-clip gives −log(1 − ε) (1.1920929e-07 in
    float32), where the exact loss is 0: the documented convention, computed as Keras computes it."""
    case = next(c for c in builtin_cases(families=["prob_edges"]) if c.name == f"prob_edges_{dtype}")
    inputs = case.inputs(dtype)
    keep = ((inputs.x == 0) & (inputs.y == 0)) | ((inputs.x == 1) & (inputs.y == 1))
    edges = Case("p_equals_y", "t", "probs", inputs.x[keep].astype(np.float64), inputs.y[keep].astype(np.float64))
    loss = _rows("tensorflow.keras_probs", edges, dtype, "none")["loss"]
    assert (loss.status, loss.deviation) == ("deviation", "keras-epsilon-clip")
    assert loss.got > 0 and loss.expected == 0.0
