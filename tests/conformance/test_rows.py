"""The consistency checks: an element alone against the same element in a batch (bits), a compiled path against
eager (tolerance), and the proof that a compiled path really ran compiled."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cases import Case, builtin_cases
from harness.conformance.plan import BATCH_SIZE, Cell
from harness.conformance.rows import Judge
from harness.verdict.oracle import reference
from implementations import Output, adapter_classes

ADAPTERS = adapter_classes()
CASE = Case("c", "test", "logits", np.array([0.0, 2.0, -3.0]), np.array([1.0, 0.0, 1.0]), tags=("batch",))


def _output(loss: np.ndarray, grad: np.ndarray, compiled: str = "") -> Output:
    return Output(loss, grad, "float32", "float32", "api", compiled)


def test_batch_identical_bits_pass_and_one_flipped_bit_fails() -> None:
    judge = Judge([CASE], {"numpy": ADAPTERS["numpy"]})
    cell = Cell("numpy.logits", 0, "float32", "cpu", "none", check="batch")
    as_float32 = lambda values: np.array(values, dtype=np.float32).astype(np.float64)  # noqa: E731
    alone = _output(as_float32([0.5, 2.1, 3.0]), as_float32([-0.5, 0.9, -0.9]))
    tiled = np.resize(np.arange(3), BATCH_SIZE)
    same = judge.batch("numpy", cell, alone, _output(alone.loss[tiled], alone.grad[tiled]))
    assert [row.status for row in same] == ["pass", "pass"]
    loss = alone.loss[tiled].copy()
    loss[4] = np.nextafter(np.float32(loss[4]), np.float32(9))  # position 4 holds element 1
    rows = judge.batch("numpy", cell, alone, _output(loss, alone.grad[tiled]))
    assert rows[0].status == "fail" and rows[0].n_bad == 1
    assert rows[0].worst_index == "[1]" and rows[0].worst_x == 2.0
    assert rows[0].max_ulp_error == 1.0
    assert rows[1].status == "pass"


def test_path_check_compares_compiled_with_eager() -> None:
    eager_cell = Cell("torch.logits", 0, "float32", "cpu", "none")
    judge = Judge([CASE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})
    ref = reference(CASE.inputs("float32"), "logits")
    hi = np.asarray(ref.loss_hi, dtype=np.float32).astype(np.float64)
    grad = np.asarray(ref.grad_hi, dtype=np.float32).astype(np.float64)
    judge.result("torch", eager_cell, _output(hi, grad), ref)
    compiled_cell = eager_cell._replace(mode="torch.compile")
    off = hi.copy()
    off[2] = hi[2] * (1 + 10 * 2.0**-23)  # 10 ULP away from eager
    rows = judge.result("torch", compiled_cell, _output(off, grad, "compiled graph executions: 1"), ref)
    by_check = {(row.check, row.quantity): row for row in rows}
    assert by_check[("path", "loss")].status == "fail" and by_check[("path", "loss")].worst_x == -3.0
    assert by_check[("path", "grad")].status == "pass"
    assert by_check[("reference", "loss")].status == "fail"
    unproven = judge.result("torch", compiled_cell, _output(hi, grad), ref)
    assert {row.status for row in unproven} == {"error"}
    assert unproven[0].error_type == "NotCompiled"


def test_a_compiled_result_that_comes_first_waits_for_its_eager_one() -> None:
    eager_cell = Cell("torch.logits", 0, "float32", "cpu", "none")
    compiled_cell = eager_cell._replace(mode="torch.compile")
    ref = reference(CASE.inputs("float32"), "logits")
    hi = np.asarray(ref.loss_hi, dtype=np.float32).astype(np.float64)
    grad = np.asarray(ref.grad_hi, dtype=np.float32).astype(np.float64)
    judge = Judge([CASE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})
    assert judge.result("torch", compiled_cell, _output(hi, grad, "compiled graph executions: 1"), ref) == []
    assert len(judge.result("torch", eager_cell, _output(hi, grad), ref)) == 2
    rows = judge.release(eager_cell)
    assert sorted((row.check, row.quantity, row.status) for row in rows) == [
        ("path", "grad", "pass"), ("path", "loss", "pass"), ("reference", "grad", "pass"),
        ("reference", "loss", "pass")]
    assert judge.release(eager_cell) == [] and judge.held == {}
    lonely = Judge([CASE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})  # its eager cell fails
    assert lonely.result("torch", compiled_cell, _output(hi, grad, "compiled graph executions: 1"), ref) == []
    assert sorted(row.check for row in lonely.release(eager_cell)) == ["reference", "reference"]  # nothing to compare


@pytest.mark.parametrize(("framework", "mode"), [("jax", "jax.jit"), ("tensorflow", "tf.function"),
                                                 ("tensorflow", "tf.function(jit_compile=True)")])
def test_compiled_modes_prove_they_ran_compiled(framework: str, mode: str) -> None:
    adapter = ADAPTERS[framework]()
    adapter.load(1)
    seed = builtin_cases(families=["seed"])[0]
    impl = next(i for i in adapter.implementations if i.input_form == "logits")
    out = adapter.compute(impl, seed.inputs("float32").arrays(), "mean", "cpu", mode)
    assert out.compiled
    assert float(out.loss) == pytest.approx(0.6219186506146224, rel=2**-22)


def test_torch_compile_fallback_is_caught_not_passed_off() -> None:
    """A compiled function made to run eagerly (torch.compiler.set_stance("force_eager"), the same silent path
    as a graph-break fallback) must be reported, not passed off as compiled; past the recompile limit, fullgraph
    makes dynamo raise."""
    adapter = ADAPTERS["torch"]()
    adapter.load(1)
    import torch

    seed = builtin_cases(families=["seed"])[0]
    impl = adapter.implementation("torch.logits")
    first = adapter.compute(impl, seed.inputs("float32").arrays(), "mean", "cpu", "torch.compile")
    assert first.compiled.startswith("compiled graph executions")
    torch.compiler.set_stance("force_eager")
    try:
        with pytest.raises(RuntimeError, match="fell back to eager"):
            adapter.compute(impl, seed.inputs("float32").arrays(), "mean", "cpu", "torch.compile")
    finally:
        torch.compiler.set_stance("default")
    torch._dynamo.config.recompile_limit = 1
    with pytest.raises(Exception, match="fullgraph=True"):
        adapter.compute(impl, seed.inputs("float64").arrays(), "mean", "cpu", "torch.compile")


def test_path_rows_of_a_silent_broadcast_do_not_index_past_the_inputs() -> None:
    """x (4,) against y (4, 1) broadcast to (4, 4): the compiled and eager results can still be compared."""
    case = Case("m", "test", "logits", np.zeros(4), np.zeros((4, 1)))
    eager_cell = Cell("jax.logits", 0, "float32", "cpu", "none")
    judge = Judge([case], {"jax": ADAPTERS["jax"]}, compared={eager_cell})
    ref = reference(case.inputs("float32"), "logits")
    broadcast = np.full((4, 4), np.log(2.0))
    judge.result("jax", eager_cell, _output(broadcast, np.zeros(4)), ref)
    moved = broadcast.copy()
    moved[1, 3] = 1.0
    rows = judge.result("jax", eager_cell._replace(mode="jax.jit"), _output(moved, np.zeros(4), "xla"), ref)
    by_check = {(row.check, row.quantity): row for row in rows}
    assert by_check[("reference", "loss")].error_type == "SilentBroadcast"
    assert by_check[("path", "loss")].status == "fail"
    assert by_check[("path", "loss")].worst_index == "[1, 3]"
    assert np.isnan(by_check[("path", "loss")].worst_y)  # y has shape (4, 1), not the result's (4, 4)


def test_batch_check_ignores_the_sign_of_nan_but_not_of_zero() -> None:
    judge = Judge([CASE], {"numpy": ADAPTERS["numpy"]})
    cell = Cell("numpy.logits", 0, "float32", "cpu", "none", check="batch")
    alone = _output(np.array([np.nan, 0.0, 1.0]), np.array([0.0, 0.0, 0.0]))
    tiled = np.resize(np.arange(3), BATCH_SIZE)
    loss = alone.loss[tiled].copy()
    loss[0] = -np.nan
    assert judge.batch("numpy", cell, alone, _output(loss, alone.grad[tiled]))[0].status == "pass"
    loss[1] = -0.0
    assert judge.batch("numpy", cell, alone, _output(loss, alone.grad[tiled]))[0].status == "fail"


def test_a_reference_row_names_its_failing_elements() -> None:
    """`failures`: the failing elements by region and failure mode, each group's count and worst element;
    passing elements and a reduced loss name none."""
    case = Case("f", "test", "logits", np.array([-40.0, -38.0, 1.0, np.inf]), np.array([0.0, 0.0, 1.0, 1.0]))
    ref = reference(case.inputs("float64"), "logits")
    loss = ref.loss_hi.copy()
    loss[:2], loss[3] = 0.0, np.nan  # the tiny losses at x << 0 lost, NaN at x = +inf
    judge = Judge([case], {"torch": ADAPTERS["torch"]})
    row = judge.result("torch", Cell("torch.logits", 0, "float64", "cpu", "none"),
                       Output(loss, ref.grad_hi.copy(), "float64", "float64", "api"), ref)[0]
    groups = json.loads(row.failures)
    assert [(g["region"], g["mode"], g["count"]) for g in groups] == [("x = +inf, y = 1", "NaN", 1),
                                                                      ("x ≪ 0, y = 0", "lost", 2)]
    assert groups[1]["index"] == [0] and groups[1]["expected"] == pytest.approx(4.248354255291589e-18, rel=1e-15)
    mean = judge.result("torch", Cell("torch.logits", 0, "float64", "cpu", "mean"),
                        Output(np.array(0.5), ref.grad_mean_hi.copy(), "float64", "float64", "api"), ref)[0]
    assert mean.failures == ""


OUTSIDE = Case("outside", "test", "probs", np.array([0.5, 1e-30]), np.array([-0.5, 2.0]), tags=("path",))


def test_a_compiled_path_that_computes_where_eager_raises_fails() -> None:
    eager_cell = Cell("torch.probs", 0, "float32", "cpu", "mean")
    compiled_cell = eager_cell._replace(mode="torch.compile")
    judge = Judge([OUTSIDE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})
    ref = reference(OUTSIDE.inputs("float32"), "probs")
    # the compiled answer comes first: it waits for eager's
    assert judge.result("torch", compiled_cell, _output(np.array(-50.0), np.zeros(2), "compiled: 1"), ref) == []
    eager = judge.raised("torch", eager_cell, "RuntimeError", "all elements of target should be between 0 and 1")
    assert {row.status for row in eager} == {"rejected"}  # outside the domain: raising is right
    rows = judge.release(eager_cell)
    path = [row for row in rows if row.check == "path"]
    assert sorted(row.quantity for row in path) == ["grad", "loss"]
    assert {(row.status, row.error_type) for row in path} == {("fail", "PathStatus")}
    assert "eager raised RuntimeError" in path[0].error_message


def test_a_compiled_path_that_raises_where_eager_computes_fails() -> None:
    eager_cell = Cell("torch.logits", 0, "float32", "cpu", "mean")
    compiled_cell = eager_cell._replace(mode="torch.compile")
    judge = Judge([CASE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})
    ref = reference(CASE.inputs("float32"), "logits")
    judge.result("torch", eager_cell, _output(np.array(ref.mean_hi), ref.grad_mean_hi), ref)
    rows = judge.raised("torch", compiled_cell, "BackendCompilerFailed", "no kernel")
    assert {(row.check, row.status) for row in rows} == {("reference", "error"), ("path", "fail")}
    unrelated = Judge([CASE], {"torch": ADAPTERS["torch"]})  # no eager to compare with: no path row
    assert {row.check for row in unrelated.raised("torch", compiled_cell, "RuntimeError", "x")} == {"reference"}


def test_a_compiled_path_that_returns_another_dtype_than_eager_fails() -> None:
    eager_cell = Cell("torch.probs", 0, "float32", "cpu", "mean")
    compiled_cell = eager_cell._replace(mode="torch.compile")
    judge = Judge([CASE], {"torch": ADAPTERS["torch"]}, compared={eager_cell})
    ref = reference(CASE.inputs("float32"), "logits")
    value = np.array(float(np.float32(ref.mean_hi)))
    judge.result("torch", eager_cell, Output(value, ref.grad_mean_hi, "bfloat16", "float32", "api"), ref)
    rows = judge.result("torch", compiled_cell, Output(value, ref.grad_mean_hi, "float32", "float32", "api",
                                                        "compiled: 1"), ref)
    path = {row.quantity: row for row in rows if row.check == "path"}
    assert path["loss"].status == "fail" and path["loss"].error_type == "PathDtype"
    assert "the compiled result is float32, eager's bfloat16" in path["loss"].error_message
    assert path["grad"].status == "pass"  # the same dtype and values
