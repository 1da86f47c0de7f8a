"""The speed-of-light kernel: built with the system's compiler, right to the pass tolerance on the benchmark inputs,
exact on the worked example, and a clear reason where it cannot be built."""

from __future__ import annotations

import numpy as np
import pytest

from cases import bench_inputs
from harness.benchmark import kernel as kernel_module
from harness.benchmark.kernel import FLOAT64_CHECKED, Kernel, KernelUnavailable, build_kernel

LABELS = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
LOGITS = [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
EXAMPLE_MEAN = 0.6219186506146224  # the worked example's mean BCE (float64, mpmath)


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    try:
        return Kernel(build_kernel(), threads=2)
    except KernelUnavailable as exc:
        pytest.skip(f"no kernel on this machine: {exc}")


def test_the_build_says_how_it_was_built(kernel: Kernel) -> None:
    build = kernel.build
    assert build.flags[:2] == ("-O3", "-march=native") and build.version
    assert set(build.dtypes) == {"float32", "float64", "bfloat16"}
    assert build.simd_bits in (0, 128, 256, 512) and isinstance(build.openmp, bool)
    assert build.record()["flags"] == list(build.flags)
    assert build_kernel() == build  # built once, then found in the cache


@pytest.mark.parametrize(("dtype", "ulps"), [("float64", 4), ("float32", 4)])
def test_the_worked_example(kernel: Kernel, dtype: str, ulps: int) -> None:
    x, y = np.array(LOGITS, dtype=dtype).ravel(), np.array(LABELS, dtype=dtype).ravel()
    forward = kernel.function(x, y, "forward")
    mean = forward() / x.size
    exact = np.array(EXAMPLE_MEAN, dtype=dtype)
    assert abs(np.array(mean, dtype=dtype) - exact) <= ulps * np.spacing(exact), f"mean={mean!r}, should be {exact}"


@pytest.mark.parametrize("direction", ["forward", "forward_backward"])
@pytest.mark.parametrize(("dtype", "n"), [("float32", 100_000), ("bfloat16", 10_000), ("float64", 2_000)])
def test_within_the_pass_tolerance_on_the_benchmark_inputs(kernel: Kernel, dtype: str, n: int,
                                                            direction: str) -> None:
    inputs = bench_inputs(n, "logits", dtype)
    accurate, said = kernel.accuracy(inputs["x"], inputs["y"], direction)
    assert accurate, said
    assert said.startswith("loss pass (") and ("grad pass (" in said) == (direction == "forward_backward")


def test_the_gradient_is_that_of_the_mean(kernel: Kernel) -> None:
    x = np.array([0.0, 2.0, -3.0, 40.0], dtype=np.float64)
    y = np.array([1.0, 0.0, 1.0, 1.0])
    call, grad = kernel._prepared(x, y, "forward_backward")
    total = call()
    # (1 − y)·σ(x) − y·σ(−x) with hard labels: no cancellation, so −σ(−40)/4 = −1.062e-18 rather than 0
    stable = np.where(y == 1, -1 / (1 + np.exp(x)), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(grad, stable / 4, rtol=4 * 2**-52)
    assert grad[3] == pytest.approx(-np.exp(-40) / 4, rel=1e-15)
    loss = np.logaddexp(0, x) - x * y
    assert total == pytest.approx(loss.sum(), rel=4 * 2**-52)


def test_float64_is_judged_on_a_prefix(kernel: Kernel) -> None:
    inputs = bench_inputs(FLOAT64_CHECKED + 10, "logits", "float64")
    accurate, said = kernel.accuracy(inputs["x"], inputs["y"], "forward")
    assert accurate and said.endswith(f"on the first {FLOAT64_CHECKED:,} elements")


def test_a_dtype_without_a_kernel_is_refused(kernel: Kernel) -> None:
    x = np.zeros(8, dtype=np.float16)
    with pytest.raises(KernelUnavailable, match="no float16"):
        kernel.function(x, x, "forward")


def test_no_compiler_is_one_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(kernel_module.shutil, "which", lambda name: None)
    with pytest.raises(KernelUnavailable, match="no C compiler found"):
        build_kernel(tmp_path)


def test_a_compiler_that_fails_is_one_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that exits 1 and writes nothing
    with pytest.raises(KernelUnavailable, match="could not build the kernel: false -O3"):
        build_kernel(tmp_path)
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("direction", ["forward", "forward_backward"])
def test_within_the_pass_tolerance_far_beyond_the_benchmark_inputs(kernel: Kernel, dtype: str,
                                                                     direction: str) -> None:
    """The clamps, the subnormal results of exp(−|x|) and the saturated σ: logits up to ±800, both labels."""
    from cases import cast

    logits = np.array([-800, -120, -104, -90, -87.5, -20, -5, -1e-3, 0, 1e-3, 5, 20, 87.5, 90, 104, 120, 800] * 2)
    labels = np.repeat([0.0, 1.0], logits.size // 2)
    accurate, said = kernel.accuracy(cast(logits, dtype), cast(labels, dtype), direction)
    assert accurate, said


def test_both_directions_of_a_group_share_one_exact_reference(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[int] = []
    exact = kernel_module.reference_uncached
    monkeypatch.setattr(kernel_module, "reference_uncached",
                        lambda inputs, form: computed.append(inputs.x.size) or exact(inputs, form))
    inputs = bench_inputs(1_000, "logits", "float32")
    for direction in ("forward", "forward_backward"):
        assert kernel.accuracy(inputs["x"], inputs["y"], direction)[0]
    other = bench_inputs(2_000, "logits", "float32")  # other inputs: their own reference
    assert kernel.accuracy(other["x"], other["y"], "forward")[0]
    assert computed == [1_000, 2_000]
