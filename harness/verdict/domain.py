"""Where BCE is defined. Outside the domain, raising is the right answer (`rejected`); returning the formula's
value (possibly NaN) is also right; anything else is judged as usual."""

from __future__ import annotations

import numpy as np

from cases import CaseInputs

__all__ = ["domain_violation", "implied_dtype", "shape_problem"]


def shape_problem(inputs: CaseInputs) -> str | None:
    """Why the inputs have no BCE value at all (mismatched or non-broadcastable shapes), or None."""
    x, y = inputs.x, inputs.y
    if x.shape != y.shape:
        return f"x.shape={x.shape} and y.shape={y.shape} differ"
    for name in ("weight", "pos_weight"):
        value = getattr(inputs, name)
        if value is None:
            continue
        try:
            if np.broadcast_shapes(value.shape, x.shape) != x.shape:
                raise ValueError
        except ValueError:
            return f"{name}.shape={value.shape} does not broadcast to x.shape={x.shape}"
    return None


def domain_violation(inputs: CaseInputs, input_form: str) -> str | None:
    """The first reason the inputs lie outside BCE's domain, or None.

    The domain: matching shapes (weights broadcast to x), no NaN anywhere, labels in [0, 1], and for the
    probabilities form p in [0, 1]. Infinite logits are inside it (the loss is 0 or +inf there).
    """
    problem = shape_problem(inputs)
    if problem:
        return problem
    for name, value in inputs.arrays().items():
        if np.isnan(value.astype(np.float64)).any():
            return f"NaN in {name}"
    y = inputs.y.astype(np.float64)
    if ((y < 0) | (y > 1)).any():
        return "label outside [0, 1]"
    if input_form == "probs":
        p = inputs.x.astype(np.float64)
        if ((p < 0) | (p > 1)).any():
            return "probability outside [0, 1]"
    return None


def implied_dtype(inputs: CaseInputs, quantity: str = "loss") -> str:
    """The dtype a result of these inputs should have: for the loss, standard type promotion of x and a float
    label (NumPy's rule, with ml_dtypes for bfloat16; integer and bool labels don't promote); the gradient with
    respect to x has x's dtype."""
    if quantity != "loss" or inputs.y.dtype.kind in "biu":
        return inputs.dtype
    return str(np.result_type(inputs.x.dtype, inputs.y.dtype))
