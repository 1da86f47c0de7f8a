"""Benchmark inputs: the same bytes for every framework, ordinary values only."""

from __future__ import annotations

import numpy as np

from cases import bytes_read


def test_bench_inputs_are_the_same_bytes_everywhere() -> None:
    from cases import bench_inputs

    logits = bench_inputs(1000, "logits", "float32", seed=3)
    again = bench_inputs(1000, "logits", "float32", seed=3)
    assert logits["x"].tobytes() == again["x"].tobytes() and logits["y"].tobytes() == again["y"].tobytes()
    assert logits["x"].dtype == np.float32 and set(np.unique(logits["y"])) == {0.0, 1.0}
    assert np.abs(logits["x"]).max() < 4.0
    probs = bench_inputs(1000, "probs", "bfloat16", seed=3)
    assert ((probs["x"].astype(np.float64) > 0) & (probs["x"].astype(np.float64) < 1)).all()


def test_bytes_read_is_x_and_y_in_the_dtype() -> None:
    assert bytes_read(1000, "float32") == 8000 and bytes_read(10, "bfloat16") == 40 and bytes_read(1, "float64") == 16
