"""Built-in case families.

Each family is a function of the seed returning cases; `FAMILIES` maps its name to it. The extreme values are
float64 masters: a value that a smaller dtype cannot hold becomes that dtype's rounding of it (1e30 is +inf in
float16), and the reference follows the rounded value, so a family is meaningful in every dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cases.model import Case

__all__ = ["FAMILIES", "builtin_cases", "family_names"]

INF = np.inf
NAN = np.nan

# The worked example every framework must reproduce: mean BCE = 0.6219186506146224 (float64).
SEED_LABELS = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
SEED_LOGITS = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
SEED_MEAN_LOSS = 0.6219186506146224


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _grid(xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Every pairing of the given inputs and labels, flattened."""
    gx, gy = np.meshgrid(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), indexing="ij")
    return gx.ravel(), gy.ravel()


def seed(_: int) -> list[Case]:
    return [
        Case("seed_logits", "seed", "logits", SEED_LOGITS, SEED_LABELS,
             description="worked example, BCEWithLogits(x, y); mean = 0.6219186506146224", tags=("seed",)),
        Case("seed_probs", "seed", "probs", _sigmoid(SEED_LOGITS), SEED_LABELS,
             description="worked example, BCE(sigmoid(x), y) with sigmoid rounded to float64", tags=("seed",)),
    ]


def random(seed_value: int) -> list[Case]:
    """Seeded random inputs at several scales, hard and soft labels."""
    rng = np.random.default_rng(seed_value)
    n = 1024
    out: list[Case] = []
    for scale in (1.0, 10.0, 100.0):
        hard = rng.integers(0, 2, n).astype(np.float64)
        soft = rng.uniform(0.0, 1.0, n)
        x = rng.standard_normal(n) * scale
        out.append(Case(f"random_logits_s{scale:g}_hard", "random", "logits", x, hard,
                        description=f"x ~ N(0, {scale:g}²), y in {{0, 1}}", tags=("random",)))
        out.append(Case(f"random_logits_s{scale:g}_soft", "random", "logits", x, soft,
                        description=f"x ~ N(0, {scale:g}²), y ~ U(0, 1)", tags=("random",)))
        p = _sigmoid(rng.standard_normal(n) * scale)
        out.append(Case(f"random_probs_s{scale:g}_hard", "random", "probs", p, hard,
                        description=f"p = sigmoid(N(0, {scale:g}²)), y in {{0, 1}}", tags=("random",)))
    return out


def large_logits(_: int) -> list[Case]:
    """Large |x| with hard labels: saturation of the loss and of sigmoid, exp overflow in naive formulas."""
    xs = [-1e30, -1e4, -104.0, -90.0, -30.0, -17.0, -15.0, 15.0, 17.0, 30.0, 90.0, 104.0, 1e4, 1e30]
    x, y = _grid(xs, [0.0, 1.0])
    return [Case("large_logits", "large", "logits", x, y,
                 description="|x| from 15 to 1e30 against y = 0 and 1 (x = -15, y = 0 loses float32 precision"
                 " in naive formulas)", tags=("extreme",))]


def nonfinite(_: int) -> list[Case]:
    """Infinite and NaN logits and labels."""
    x, y = _grid([-INF, INF], [0.0, 1.0, 0.5])
    return [
        Case("inf_logits", "nonfinite", "logits", x, y,
             description="x = ±inf with y = 0, 1, 0.5: the loss is 0 or +inf, the gradient finite",
             tags=("extreme",)),
        Case("nan_logits", "nonfinite", "logits", np.array([NAN, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]),
             description="a NaN logit among finite ones (outside the domain)", tags=("invalid",)),
        Case("nan_labels", "nonfinite", "logits", np.array([0.5, 0.0, -1.0]), np.array([1.0, NAN, 0.0]),
             description="a NaN label among finite ones (outside the domain)", tags=("invalid",)),
    ]


def probs_edges(_: int) -> list[Case]:
    """Probabilities exactly 0 and 1, and just inside."""
    p, y = _grid([0.0, 1e-30, 0.5, 1.0 - 2.0**-24, 1.0], [0.0, 1.0, 0.5])
    return [
        Case("probs_edges", "probs_edges", "probs", p, y,
             description="p in {0, 1e-30, 0.5, 1 - 2^-24, 1} against y = 0, 1, 0.5 (log 0 = -inf)",
             tags=("extreme",)),
        Case("probs_out_of_range", "probs_edges", "probs", np.array([-0.1, 1.1, 0.5]), np.array([0.0, 1.0, 1.5]),
             description="p and y just outside [0, 1] (outside the domain)", tags=("invalid",)),
    ]


def soft_labels(_: int) -> list[Case]:
    xs = [-20.0, -3.0, -0.5, 0.0, 0.5, 3.0, 20.0]
    ys = [0.1, 0.25, 0.5, 0.75, 0.9]
    x, y = _grid(xs, ys)
    p, yp = _grid([1e-6, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0 - 1e-6], ys)
    return [
        Case("soft_labels_logits", "soft", "logits", x, y, description="soft labels against moderate logits",
             tags=("soft",)),
        Case("soft_labels_probs", "soft", "probs", p, yp, description="soft labels against probabilities",
             tags=("soft",)),
    ]


def weights(seed_value: int) -> list[Case]:
    """`weight` and `pos_weight`: scalar, per-class (last axis) and broadcast over rows."""
    rng = np.random.default_rng(seed_value + 1)
    rows, classes = 6, 4
    x = rng.standard_normal((rows, classes)) * 4.0
    y = rng.integers(0, 2, (rows, classes)).astype(np.float64)
    p = _sigmoid(x)
    per_class = np.array([0.5, 1.0, 2.0, 3.0])
    per_row = rng.uniform(0.25, 2.0, (rows, 1))
    return [
        Case("weight_scalar", "weights", "logits", x, y, weight=np.array(2.5), description="weight = 2.5"),
        Case("weight_per_class", "weights", "logits", x, y, weight=per_class,
             description="weight of shape (C,)"),
        Case("weight_per_row", "weights", "logits", x, y, weight=per_row, description="weight of shape (N, 1)"),
        Case("pos_weight_scalar", "weights", "logits", x, y, pos_weight=np.array([3.0]),
             description="pos_weight = [3.0]"),
        Case("pos_weight_per_class", "weights", "logits", x, y, pos_weight=per_class,
             description="pos_weight of shape (C,)"),
        Case("weight_and_pos_weight", "weights", "logits", x, y, weight=per_row, pos_weight=per_class,
             description="weight (N, 1) with pos_weight (C,)"),
        Case("weight_per_class_probs", "weights", "probs", p, y, weight=per_class,
             description="weight of shape (C,), probabilities form"),
    ]


def shapes(_: int) -> list[Case]:
    """Empty, 0-d and mismatched inputs: what each framework does with them is a finding."""
    return [
        Case("empty_logits", "shapes", "logits", np.zeros((0,)), np.zeros((0,)),
             description="empty arrays: sum is 0, mean is NaN (0/0)", tags=("shape",)),
        Case("scalar_logits", "shapes", "logits", np.array(2.0), np.array(1.0), description="0-d inputs",
             tags=("shape",)),
        Case("mismatch_logits", "shapes", "logits", np.array([0.5, -1.0, 2.0, 0.0]),
             np.array([[1.0], [0.0], [1.0], [0.0]]),
             description="x (4,) against y (4, 1): raising is right, broadcasting to (4, 4) is not",
             tags=("shape", "invalid")),
    ]


FAMILIES: dict[str, Callable[[int], list[Case]]] = {
    "seed": seed,
    "random": random,
    "large": large_logits,
    "nonfinite": nonfinite,
    "probs_edges": probs_edges,
    "soft": soft_labels,
    "weights": weights,
    "shapes": shapes,
}


def family_names() -> list[str]:
    return list(FAMILIES)


def builtin_cases(seed_value: int = 0, families: list[str] | None = None) -> list[Case]:
    """All built-in cases of the named families (all by default), deterministic in `seed_value`."""
    chosen = families if families is not None else family_names()
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    return [case for name in chosen for case in FAMILIES[name](seed_value)]
