"""The inputs an API is judged on: label smoothing's are the smoothed labels, exactly."""

from __future__ import annotations

import numpy as np

from cases import Case
from harness.verdict.variants import ReferenceKey, variant_inputs, variant_of
from implementations import adapter_classes


def test_label_smoothing_is_judged_on_the_smoothed_labels() -> None:
    case = Case("c", "t", "logits", np.array([0.0, 20.0, -1.0]), np.array([1.0, 0.0, 0.5]),
                weight=np.array([2.0, 3.0, 1.0]))
    inputs, form = variant_inputs([case], ReferenceKey(0, "float32", "smooth"))
    assert form == "logits" and inputs.x.tolist() == [0.0, 20.0, -1.0]
    assert inputs.y.tolist() == [0.875, 0.125, 0.5]  # y·0.75 + 0.125, exact in float32
    assert inputs.weight is not None and inputs.weight.tolist() == [2.0, 3.0, 1.0]
    plain, _ = variant_inputs([case], ReferenceKey(0, "float32"))
    assert plain.y.tolist() == [1.0, 0.0, 0.5]


def test_only_label_smoothing_has_a_variant() -> None:
    variants = {impl.impl: variant_of(impl) for adapter in adapter_classes().values()
                for impl in adapter.implementations if variant_of(impl)}
    assert variants == {"tensorflow.keras_smoothing": "smooth", **{
        f"keras_{backend}.smoothing": "smooth" for backend in ("tensorflow", "jax", "torch", "numpy")}}
