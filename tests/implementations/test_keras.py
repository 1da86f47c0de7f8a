"""Keras 3 on its four backends (implementations/keras_adapter.py).

A process holds one Keras backend, so TensorFlow's runs here (the TensorFlow adapter shares it) and the others in
a subprocess each. Expected values from first principles, in float64: the worked example's mean is
0.6219186506146224 (mpmath 0.62191865061462234528…); l(x, y) = softplus(x) − x·y, so l(0, 0) = log 2 =
0.6931471805599453 and l(1, 1) = log1p(e⁻¹) = 0.3132616875182228; l(−20, 0) = log1p(e⁻²⁰) = 2.0611536203143e-09.
Keras's clip bound 1 − 1e-7 in float32 is 0.99999988079071045 = 1 − 2⁻²³, and −log(1 − 2⁻²³) = 2⁻²³ + 2⁻⁴⁷ + …
rounds up to 2⁻²³ + 2⁻⁴⁶ = 1.1920930376163597e-07 in float32 (just past the halfway point).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cases import Case, builtin_cases, float_format
from harness.verdict.oracle import reference
from harness.verdict.ulp import judge
from implementations import Adapter, Unsupported
from implementations.keras_adapter import (
    KerasJaxAdapter,
    KerasNumpyAdapter,
    KerasTensorflowAdapter,
    KerasTorchAdapter,
)
from tests.frameworks import ADAPTERS

SEED_LOGITS, SEED_PROBS = builtin_cases(families=["seed"])
SEED_MEAN = 0.6219186506146224
LOG1P_EXP_M1 = 0.3132616875182228  # l(1, 1) = log1p(e⁻¹)
CLIP_LOSS_F32 = 2.0**-23 + 2.0**-46  # −log(1 − 2⁻²³) = 2⁻²³ + 2⁻⁴⁷ + … rounded up to float32: 1.1920930e-07


@pytest.fixture(scope="module")
def keras_tensorflow() -> Adapter:
    if not KerasTensorflowAdapter.is_available():
        pytest.skip("keras or tensorflow is not installed")
    adapter = KerasTensorflowAdapter()
    try:
        adapter.load(threads=1)
    except Unsupported as exc:  # Keras already imported on another backend in this process
        pytest.skip(str(exc))
    return adapter


def test_every_backend_is_registered_with_the_same_apis() -> None:
    names = {cls.framework: [impl.impl.split(".", 1)[1] for impl in cls.implementations]
             for cls in (KerasTensorflowAdapter, KerasJaxAdapter, KerasTorchAdapter, KerasNumpyAdapter)}
    assert set(names) <= set(ADAPTERS) and len({tuple(apis) for apis in names.values()}) == 1
    for cls in (KerasJaxAdapter, KerasTorchAdapter, KerasNumpyAdapter):
        assert all(impl.same_api_on == "keras_tensorflow." + impl.impl.split(".", 1)[1]
                   for impl in cls.implementations)
    assert all(impl.same_api_on is None for impl in KerasTensorflowAdapter.implementations)
    assert not any(impl.differentiable for impl in KerasNumpyAdapter.implementations)  # no autodiff


@pytest.mark.parametrize("api", ["ops_probs", "ops_logits", "losses_probs", "losses_logits"])
def test_worked_example_holds_on_tensorflow_in_float64(keras_tensorflow: Adapter, api: str) -> None:
    impl = keras_tensorflow.implementation(f"keras_tensorflow.{api}")
    case = SEED_LOGITS if impl.input_form == "logits" else SEED_PROBS
    out = keras_tensorflow.compute(impl, case.inputs("float64").arrays(), "mean", "cpu")
    assert out.out_dtype == "float64"
    assert abs(float(out.loss) - SEED_MEAN) <= 4 * 2.0**-53, f"out={float(out.loss)!r}, but should be {SEED_MEAN!r}"
    if impl.input_form == "logits":  # (σ(x) − y)/16 at x = 1, y = 1: −σ(−1)/16
        assert out.grad is not None
        np.testing.assert_allclose(out.grad[1, 1], -0.016808838835624694, rtol=8 * 2.0**-53)


def test_loss_class_computes_float64_in_float32_and_fails(keras_tensorflow: Adapter) -> None:
    """Not a pass: the class casts to floatx (float32), 2.5e8 float64 ULP from the exact mean (no alarm)."""
    impl = keras_tensorflow.implementation("keras_tensorflow.class_logits")
    inputs = SEED_LOGITS.inputs("float64")
    out = keras_tensorflow.compute(impl, inputs.arrays(), "mean", "cpu")
    assert out.out_dtype == "float32" and float(out.loss) == float(np.float32(SEED_MEAN))
    ref = reference(inputs, "logits")
    verdict = judge(out.loss, *ref.loss("mean"), float_format("float64"), ref.n)
    assert verdict.status == "fail", verdict


def test_probability_clip_gives_the_clip_value_in_float32(keras_tensorflow: Adapter) -> None:
    impl = keras_tensorflow.implementation("keras_tensorflow.ops_probs")
    arrays = {"x": np.array([0.0, 1.0], dtype=np.float32), "y": np.array([0.0, 1.0], dtype=np.float32)}
    out = keras_tensorflow.compute(impl, arrays, "none", "cpu")  # exact: 0 and 0
    # −log(1 − 2⁻²³) in float32 within 1 ULP (2⁻⁴⁶): TensorFlow's float32 log gives 2⁻²³, one below
    assert all(abs(value - CLIP_LOSS_F32) <= 2.0**-46 for value in out.loss.tolist()), out.loss
    assert out.grad is not None and out.grad.tolist() == [0.0, 0.0]  # the clip's gradient


def test_reproducer_computes_what_the_adapter_does(keras_tensorflow: Adapter) -> None:
    impl = keras_tensorflow.implementation("keras_tensorflow.losses_logits")
    namespace: dict[str, Any] = {"DTYPE": "float64", "Y_DTYPE": "float64", "W_DTYPE": "float64",
                                 "REDUCTION": "mean"}
    exec(keras_tensorflow.repro_source(impl, "eager"), namespace)
    arrays = SEED_LOGITS.inputs("float64").arrays()
    loss, grad = namespace["run"](arrays["x"], arrays["y"], None, None)
    assert float(loss) == SEED_MEAN and grad.shape == (4, 4)


# One subprocess per backend: what it prints is checked here.
_BACKEND_SCRIPT = """
import json, sys
import numpy as np
from implementations import adapter_classes
adapter = adapter_classes()[sys.argv[1]]()
adapter.load(threads=1)
out = {}
for api, x, y, dtype, reduction in json.loads(sys.argv[2]):
    impl = adapter.implementation(f"{sys.argv[1]}.{api}")
    arrays = {"x": np.array(x, dtype=dtype), "y": np.array(y, dtype=dtype)}
    result = adapter.compute(impl, arrays, reduction, "cpu")
    out[f"{api} {dtype} {reduction}"] = {"loss": result.loss.tolist(), "dtype": result.out_dtype,
                                         "grad": None if result.grad is None else result.grad.tolist()}
print("RESULT " + json.dumps(out))
"""
SEED_X = [[0.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
SEED_Y = [[0.0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]


def _run_backend(framework: str, calls: list[tuple[str, Any, Any, str, str]]) -> dict[str, Any]:
    if not ADAPTERS[framework].is_available():
        pytest.skip(f"{framework} is not installed")
    done = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, framework, json.dumps(calls)],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


@pytest.mark.slow  # a process of its own: Keras holds one backend per process
def test_torch_backend_averages_float64_in_float32() -> None:
    """Keras on torch: keras.ops.mean casts to result_type(float64, float32), which is float32 off TensorFlow
    (keras/src/backend/common/dtypes.py: BIT64_TO_BIT32_DTYPE); keras.losses.binary_crossentropy averages over the
    last axis with it, so even its per-element float64 loss is a float32 number. The elements themselves
    (torch's own kernel) are exact."""
    got = _run_backend("keras_torch", [("ops_logits", SEED_X, SEED_Y, "float64", "none"),
                                       ("ops_logits", SEED_X, SEED_Y, "float64", "mean"),
                                       ("losses_logits", SEED_X, SEED_Y, "float64", "none")])
    elements = got["ops_logits float64 none"]
    assert elements["dtype"] == "float64" and elements["loss"][0][0] == 0.6931471805599453
    assert abs(elements["loss"][1][1] - LOG1P_EXP_M1) <= 4 * 2.0**-54  # 4 ULP at 0.31 (torch: 1 ULP)
    mean = got["ops_logits float64 mean"]
    assert mean["dtype"] == "float64" and mean["loss"] != SEED_MEAN
    assert mean["loss"] == float(np.float32(mean["loss"]))  # a float32 number
    assert abs(mean["loss"] - SEED_MEAN) < 2**-24  # within float32's rounding, 2.9e8 float64 ULP away
    np.testing.assert_allclose(mean["grad"][1][1], -0.016808838835624694, rtol=8 * 2.0**-53)
    through_axis = got["losses_logits float64 none"]["loss"]
    assert through_axis[1][1] == float(np.float32(LOG1P_EXP_M1))  # 0.3132616877555847: 4.3e6 ULP off


@pytest.mark.slow  # a process of its own: Keras holds one backend per process
def test_numpy_backend_clips_the_sigmoid_of_logits() -> None:
    """Keras on NumPy: from_logits=True is sigmoid → clip → log, so l(−20, 0) = 2.06e-9 comes out as the clip's
    −log(1 − 2⁻²³) = 1.19e-7 in float32 (58 times too large; a `fail`, not a documented convention), while the
    probabilities' clip at p = 0 gives the same number (the documented clip). No gradient (no autodiff)."""
    got = _run_backend("keras_numpy", [("ops_logits", [-20.0, 20.0, 0.0], [0.0, 1.0, 0.0], "float32", "none"),
                                       ("ops_probs", [0.0], [0.0], "float32", "none")])
    logits = got["ops_logits float32 none"]
    assert logits["loss"] == [CLIP_LOSS_F32, CLIP_LOSS_F32, float(np.float32(0.6931471805599453))]
    assert logits["grad"] is None
    assert got["ops_probs float32 none"]["loss"] == [CLIP_LOSS_F32]


@pytest.mark.slow
def test_audit_on_jax_and_numpy_judges_the_clip_and_the_logits_miss(tmp_path: Any) -> None:
    """A small float32 audit through the workers: p = 0, y = 0 is the documented clip (`deviation`) on both; the
    NumPy backend's l(−20, 0) is a `fail` and JAX's (jax.nn.log_sigmoid) a pass; NumPy's gradient unsupported."""
    from harness import audit

    cases = [Case("p0_y0", "user", "probs", np.array([0.0, 0.5]), np.array([0.0, 0.0]), tags=("path",)),
             Case("x_m20_y0", "user", "logits", np.array([-20.0]), np.array([0.0]), tags=("path",))]  # Keras's
    rows = audit(frameworks=["keras_jax", "keras_numpy"], dtypes=["float32"], cases=cases, out=tmp_path / "run",
                 write_report=False)
    rows = rows[(rows["check"] == "reference") & (rows["reduction"] == "none")]

    def status(impl: str, case: str, quantity: str = "loss") -> set[str]:
        chosen = rows[(rows["impl"] == impl) & (rows["case"] == case) & (rows["quantity"] == quantity)]
        return set(chosen["status"])

    for framework in ("keras_jax", "keras_numpy"):
        assert status(f"{framework}.ops_probs", "p0_y0") == {"deviation"}
    assert status("keras_numpy.ops_logits", "x_m20_y0") == {"fail"}
    assert status("keras_jax.ops_logits", "x_m20_y0") == {"pass"}
    assert status("keras_numpy.ops_logits", "x_m20_y0", "grad") == {"unsupported"}


@pytest.mark.slow
def test_backend_identity_between_runs_by_merge_and_by_resume(tmp_path: Any) -> None:
    """Keras on TensorFlow in one run, on NumPy in another: neither can check the `backend` identity alone, so each
    keeps its side's outputs, and the merge judges it; a resume of a run whose identity rows are missing reruns
    both sides, whichever framework each is. Keras on NumPy computes l(20, 0) as −log(1 − clip(σ(20))) =
    −log(2⁻²³) = 15.94 where TensorFlow gives 20 (the exact 20 + 2.1e-9): a `fail` of the identity at element 1."""
    from harness import audit
    from harness.conformance.runner import run_conformance
    from harness.scale.merge import merge_runs
    from harness.store.schema import CellKey, ConformanceRow
    from implementations import adapter_classes

    case = Case("x0_20", "user", "logits", np.array([0.0, 20.0]), np.array([1.0, 0.0]), tags=("path",))
    runs = {name: audit(frameworks=[name], dtypes=["float32"], cases=[case], out=tmp_path / name,
                        write_report=False) for name in ("keras_tensorflow", "keras_numpy")}
    assert all((runs[name]["relation"] == "backend").sum() == 0 for name in runs)
    merged = pd.read_parquet(merge_runs([tmp_path / name for name in runs], tmp_path / "m", "m") /
                             "conformance.parquet")
    backend = merged[(merged["relation"] == "backend") & (merged["impl"] == "keras_numpy.ops_logits")]
    assert set(backend["quantity"]) == {"loss"} and len(backend) == 3  # none, mean, sum; NumPy has no gradient
    none = backend[backend["reduction"] == "none"].iloc[0]
    assert (none["status"], none["worst_index"], none["expected"]) == ("fail", "[1]", 20.0)
    assert none["got"] == float(-np.log(np.float32(2.0**-23)))
    assert set(backend["run_id"]) == set(runs["keras_numpy"]["run_id"])

    rows = pd.concat(runs.values())
    recorded = frozenset(CellKey.of(row) for row in rows.to_dict(orient="records"))
    again: list[ConformanceRow] = []
    adapters = {name: adapter_classes()[name] for name in runs}
    run_conformance([case], adapters, ["float32"], ["cpu"], emit=again.extend, recorded=recorded)
    resumed = {(row.impl, row.reduction, row.quantity): row.status for row in again if row.relation == "backend"}
    expected = {(row["impl"], row["reduction"], row["quantity"]): row["status"]
                for row in merged[merged["relation"] == "backend"].to_dict(orient="records")}
    assert resumed == expected and len(expected) > 3
    alone: list[ConformanceRow] = []  # a resume of the NumPy run alone: nothing left to do (its sides were kept)
    own = frozenset(CellKey.of(row) for row in runs["keras_numpy"].to_dict(orient="records"))
    run_conformance([case], {"keras_numpy": adapters["keras_numpy"]}, ["float32"], ["cpu"], emit=alone.extend,
                    recorded=own)
    assert alone == []
