"""Benchmark inputs: the same bytes for every framework, at any size.

Speed is measured on ordinary, well-conditioned inputs (no infinities, no subnormals, no saturated
probabilities), so that no framework runs a slow special-case path that the others skip: logits uniform on
[-4, 4), probabilities σ(x) (within [0.018, 0.982], exact in every dtype after one rounding) and hard labels.
"""

from __future__ import annotations

import numpy as np

from cases.dtypes import DTYPES, cast
from cases.model import InputForm

__all__ = ["BENCH_LOGIT_RANGE", "bench_inputs", "bytes_read"]

BENCH_LOGIT_RANGE = 4.0


def bench_inputs(n: int, input_form: InputForm, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """x (logits or probabilities) and y (labels in {0, 1}) of `n` elements in `dtype`, from `seed`.

    The values depend on (n, seed) only, not on the form or the dtype beyond one rounding, so every framework,
    form and dtype at a size works on the same problem.
    """
    rng = np.random.default_rng([seed, n])
    logits = rng.uniform(-BENCH_LOGIT_RANGE, BENCH_LOGIT_RANGE, n)
    labels = rng.integers(0, 2, n).astype(np.float64)
    values = logits if input_form == "logits" else 1.0 / (1.0 + np.exp(-logits))
    return {"x": cast(values, dtype), "y": cast(labels, dtype)}


def bytes_read(n: int, dtype: str) -> int:
    """Bytes a BCE of `n` elements must read at least once: x and y, each in `dtype`."""
    return 2 * n * DTYPES[dtype].numpy_dtype.itemsize
