"""Built-in case families.

Each family is a function of the seed returning cases; `FAMILIES` maps its name to it. The extreme values are
float64 masters: a value that a smaller dtype cannot hold becomes that dtype's rounding of it (1e30 is +inf in
float16), and the reference follows the rounded value, so a family is meaningful in every dtype. The families
derived from one dtype's own limits (thresholds, probability edges) live in `cases.extreme` and run only in it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cases.dtypes import DTYPES, round_to_format
from cases.extreme import grid, labels, logit_thresholds, prob_edges
from cases.model import Case, InputForm
from cases.relations import contexts, relations

__all__ = ["FAMILIES", "SCALE_SIZES", "builtin_cases", "family_names"]

INF = np.inf

# The worked example every framework must reproduce: mean BCE = 0.6219186506146224 (float64).
SEED_LABELS = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
SEED_LOGITS = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
SEED_MEAN_LOSS = 0.6219186506146224


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def seed(_: int) -> list[Case]:
    return [
        Case("seed_logits", "seed", "logits", SEED_LOGITS, SEED_LABELS,
             description="worked example, BCEWithLogits(x, y); mean = 0.6219186506146224",
             tags=("seed", "path")),
        Case("seed_probs", "seed", "probs", _sigmoid(SEED_LOGITS), SEED_LABELS,
             description="worked example, BCE(sigmoid(x), y) with sigmoid rounded to float64",
             tags=("seed", "path")),
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
    x, y = grid(xs, [0.0, 1.0])
    return [Case("large_logits", "large", "logits", x, y,
                 description="|x| from 15 to 1e30 against y = 0 and 1 (x = -15, y = 0 loses float32 precision"
                 " in naive formulas)", tags=("extreme",))]


def overflow(_: int) -> list[Case]:
    """Per dtype, a mean of two losses at 3/4 of its largest number: the sum overflows, the mean does not."""
    return [Case(f"overflow_mean_{name}", "overflow", "logits", np.full(2, top), np.zeros(2), dtypes=(name,),
                 description=f"two losses of {top:.4g} (3/4 of {name}'s largest number): their sum overflows, their "
                             "mean does not (found by the fuzzer)", tags=("extreme",))
            for name, fmt in DTYPES.items() for top in [float(round_to_format(0.75 * fmt.max_finite, fmt))]]


def soft_labels(_: int) -> list[Case]:
    xs = [-20.0, -3.0, -0.5, 0.0, 0.5, 3.0, 20.0]
    ys = [0.1, 0.25, 0.5, 0.75, 0.9]
    x, y = grid(xs, ys)
    p, yp = grid([1e-6, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0 - 1e-6], ys)
    return [
        Case("soft_labels_logits", "soft", "logits", x, y, description="soft labels against moderate logits",
             tags=("soft",)),
        Case("soft_labels_probs", "soft", "probs", p, yp, description="soft labels against probabilities",
             tags=("soft",)),
    ]


def weights(seed_value: int) -> list[Case]:
    """`weight` and `pos_weight`: scalar, per-class (last axis) and broadcast over rows. The further derivatives
    run on weight (N, 1) with pos_weight (C,) and on the per-class weight of probabilities (∂/∂weight and
    ∂/∂pos_weight summed over what each entry broadcasts to)."""
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
             description="weight (N, 1) with pos_weight (C,)", tags=("derivative",)),
        Case("weight_per_class_probs", "weights", "probs", p, y, weight=per_class,
             description="weight of shape (C,), probabilities form", tags=("derivative",)),
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


def weights_extra(_: int) -> list[Case]:
    """Zero, negative and 0-d weights, zero pos_weight, weight (N, 1) with pos_weight (C,), and weights that do
    not broadcast to x (raising is the right outcome there)."""
    x = np.array([[-40.0, -3.0, -0.5, 0.0], [0.5, 3.0, 40.0, 1.0], [-1.0, 2.0, -20.0, 20.0]])
    y = np.array([[0.0, 1.0, 0.5, 1.0], [0.0, 1.0, 0.0, 0.25], [1.0, 0.0, 1.0, 0.75]])
    p = np.array([[1e-6, 0.05, 0.4, 0.5], [0.6, 0.95, 1.0 - 1e-6, 0.73], [0.27, 0.88, 1e-3, 0.999]])
    zero_some = np.array([[0.0, 1.0, 0.0, 2.0], [1.0, 0.0, 0.5, 0.0], [0.0, 3.0, 0.0, 1.0]])
    signed = np.array([-1.0, -0.5, 0.5, 2.0])
    # at ±inf the loss is 0 or +inf; a 0 weight times +inf is NaN (plain product), a 0 coefficient drops the term
    x_inf, y_inf = grid([-INF, INF], [0.0, 1.0])
    row_weight = np.array([[0.5], [2.0], [-1.0]])
    class_pos_weight = np.array([0.0, 0.5, 2.0, 10.0])
    small_pos_weight = np.array([0.01, 0.016, 0.0078, 0.03])
    return [
        Case("weight_zero", "weights_extra", "logits", x, y, weight=zero_some,
             description="weight (N, C) with zeros: those elements' loss and gradient are 0"),
        Case("weight_zero_probs", "weights_extra", "probs", p, y, weight=zero_some,
             description="weight (N, C) with zeros, probabilities form"),
        Case("weight_zero_inf_logits", "weights_extra", "logits", x_inf, y_inf, weight=np.zeros(4),
             description="weight 0 on x = ±inf, y = 0, 1: loss 0·0 = 0 or 0·inf = NaN (plain product)",
             tags=("extreme",)),
        Case("weight_negative", "weights_extra", "logits", x, y, weight=signed,
             description="weight (C,) = [-1, -0.5, 0.5, 2]: negative weights flip the loss's sign"),
        Case("weight_negative_probs", "weights_extra", "probs", p, y, weight=signed,
             description="weight (C,) = [-1, -0.5, 0.5, 2], probabilities form"),
        Case("pos_weight_zero", "weights_extra", "logits", x, y, pos_weight=np.array([0.0]),
             description="pos_weight = [0]: the y·log σ(x) term vanishes, only (1 - y)·softplus(x) remains"),
        Case("pos_weight_zero_inf_logits", "weights_extra", "logits", x_inf, y_inf, pos_weight=np.array([0.0]),
             description="pos_weight = [0] at x = -inf, y = 1: the term's coefficient is 0, so it is absent (0, not"
                         " 0·inf = NaN)", tags=("extreme",)),
        Case("weight_0d_all_0d", "weights_extra", "logits", np.array(-3.0), np.array(0.25), weight=np.array(1.5),
             description="0-d x, y and weight"),
        Case("pos_weight_0d", "weights_extra", "logits", x, y, pos_weight=np.array(3.0),
             description="0-d pos_weight = 3"),
        Case("pos_weight_below_one", "weights_extra", "logits", x, np.ones_like(x), pos_weight=small_pos_weight,
             description="pos_weight (C,) below 1 and not a power of two, y = 1: l = p·softplus(-x) needs p to its "
                         "last bit, which 1 + (p - 1)·y loses (p - 1 rounds at 2^-25 in float32: 2^-25/p relative; "
                         "found by the fuzzer)"),
        Case("weight_rows_pos_weight_classes", "weights_extra", "logits", x, y, weight=row_weight,
             pos_weight=class_pos_weight,
             description="weight (N, 1) with a negative row, pos_weight (C,) with a 0, |x| up to 40, soft labels"),
        Case("weight_not_broadcastable", "weights_extra", "logits", x[:2], y[:2], weight=np.array([1.0, 2.0, 3.0]),
             description="weight (3,) against x (2, 4): raising is right, any value is not",
             tags=("shape", "invalid")),
        Case("pos_weight_not_broadcastable", "weights_extra", "logits", x[:2], y[:2],
             pos_weight=np.array([1.0, 2.0, 3.0]),
             description="pos_weight (3,) against x (2, 4): raising is right, any value is not",
             tags=("shape", "invalid")),
    ]


_NARROW = ("float32", "float16", "bfloat16")


def targets(_: int) -> list[Case]:
    """Integer and bool targets, and float64 labels against narrower inputs (mixed dtypes), in both forms."""
    hard_logits, hard_logit_labels = grid([-20.0, -2.0, -0.5, 0.0, 0.5, 2.0, 20.0], [0.0, 1.0])
    hard_probs, hard_prob_labels = grid([0.0, 1e-4, 0.1, 0.5, 0.9, 1.0 - 1e-4, 1.0], [0.0, 1.0])
    # labels no narrower dtype holds exactly: kept in float64, the reference uses them unrounded
    soft = [0.1, 1.0 / 3.0, 0.7, 1.0 - 2.0**-20, 2.0**-30]
    soft_logits, soft_logit_labels = grid([-20.0, -2.0, 0.0, 2.0, 20.0], soft)
    soft_probs, soft_prob_labels = grid([1e-4, 0.1, 0.5, 0.9, 1.0 - 1e-4], soft)
    out: list[Case] = []
    for y_dtype in ("int64", "bool"):
        out.append(Case(f"targets_{y_dtype}_logits", "targets", "logits", hard_logits, hard_logit_labels,
                        description=f"{y_dtype} targets in {{0, 1}} against logits", y_dtype=y_dtype,
                        tags=("targets",)))
        out.append(Case(f"targets_{y_dtype}_probs", "targets", "probs", hard_probs, hard_prob_labels,
                        description=f"{y_dtype} targets in {{0, 1}} against probabilities", y_dtype=y_dtype,
                        tags=("targets",)))
    out.append(Case("targets_float64_logits", "targets", "logits", soft_logits, soft_logit_labels,
                    description="float64 labels (0.1, 1/3, 0.7, 1 - 2^-20, 2^-30) against narrower logits",
                    y_dtype="float64", dtypes=_NARROW, tags=("targets",)))
    out.append(Case("targets_float64_probs", "targets", "probs", soft_probs, soft_prob_labels,
                    description="float64 labels (0.1, 1/3, 0.7, 1 - 2^-20, 2^-30) against narrower probabilities",
                    y_dtype="float64", dtypes=_NARROW, tags=("targets",)))
    return out


# Long reductions in the half-precision dtypes. The mean loss is ≈ 1.07 for x ~ N(0, 2²) with hard labels and ≈ 1
# for p ~ U(0.001, 0.99), so a float16 sum passes 65504 from n ≈ 61 000 on. The default audit runs 1e3 and 1e5;
# --full adds 1e4 and 1e6 (each new length costs JAX's eager dispatch a compilation of every primitive).
SCALE_SIZES = (1_000, 10_000, 100_000, 1_000_000)
FULL_SCALE_SIZES = (10_000, 1_000_000)
_SCALE_PROBS_SIZES = (100_000, 1_000_000)
_SCALE_DTYPES = ("float16", "bfloat16")
# float16 element counts around its largest integers: 65504 is its largest finite number, so float16(n) is 65504
# for n ≤ 65519 and inf from 65520 on, and a mean that divides by a float16 count breaks there; 232·304 = 70 528 is
# the same in two dimensions (float16 logits only).
COUNT_EDGE_SHAPES: tuple[int | tuple[int, int], ...] = (65_535, 65_536, 65_537, (232, 304))
# Each case's own stream default_rng([seed, k]); the recipes spell out the same operations, run by `exec` with `np`.
_LOGITS_RECIPE = """rng = np.random.default_rng([{seed}, {k}])
x = rng.standard_normal({n}) * 2.0
y = rng.integers(0, 2, {n}).astype(np.float64)"""
_PROBS_RECIPE = """rng = np.random.default_rng([{seed}, {k}])
x = rng.uniform(0.001, 0.99, {n})
y = rng.integers(0, 2, {n}).astype(np.float64)"""


def _scale_logits(seed_value: int, k: int, shape: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed_value, k])
    x = rng.standard_normal(shape) * 2.0
    return x, rng.integers(0, 2, shape).astype(np.float64)


def _scale_probs(seed_value: int, k: int, shape: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    # uniform away from 0 and 1: 0.99 stays below 1 in bfloat16 (whose largest number below 1 is 1 - 2^-8)
    rng = np.random.default_rng([seed_value, k])
    x = rng.uniform(0.001, 0.99, shape)
    return x, rng.integers(0, 2, shape).astype(np.float64)


def scale(seed_value: int) -> list[Case]:
    """`mean` and `sum` over long float16/bfloat16 inputs (1e3 to 1e6 elements), and float16 logits at the counts
    float16 cannot hold (65535 to 70 528 elements), each with its NumPy recipe."""
    plan: list[tuple[InputForm, int | tuple[int, ...], tuple[str, ...]]] = [
        ("logits", n, _SCALE_DTYPES) for n in SCALE_SIZES]
    plan += [("probs", n, _SCALE_DTYPES) for n in _SCALE_PROBS_SIZES]
    # appended, so that the earlier cases keep their streams
    plan += [("logits", shape, ("float16",)) for shape in COUNT_EDGE_SHAPES]
    out: list[Case] = []
    for k, (form, shape, dtypes) in enumerate(plan):
        make, recipe, law = ((_scale_logits, _LOGITS_RECIPE, "x ~ N(0, 2²)") if form == "logits"
                             else (_scale_probs, _PROBS_RECIPE, "p ~ U(0.001, 0.99)"))
        x, y = make(seed_value, k, shape)
        out.append(Case(
            f"scale_{form}_{_size_name(shape)}", "scale", form, x, y,
            description=f"{law}, y in {{0, 1}}, {_size_text(shape)}: long low-precision reductions (float16 sums "
                        "overflow past 65504 from n ≈ 61 000; a float16 count is inf from 65520)",
            tags=("scale", *(("full",) if shape in FULL_SCALE_SIZES else ())),
            dtypes=dtypes,
            recipe=recipe.format(seed=seed_value, k=k, n=shape),
        ))
    return out


def _size_name(shape: int | tuple[int, ...]) -> str:
    """n1000 for 1000 elements, 232x304 for a 2-D shape."""
    return f"n{shape}" if isinstance(shape, int) else "x".join(str(side) for side in shape)


def _size_text(shape: int | tuple[int, ...]) -> str:
    if isinstance(shape, int):
        return f"n = {shape}"
    return f"shape {'×'.join(str(side) for side in shape)} = {int(np.prod(shape))} elements"


FAMILIES: dict[str, Callable[[int], list[Case]]] = {
    "seed": seed,
    "random": random,
    "large": large_logits,
    "overflow": overflow,
    "logit_thresholds": logit_thresholds,
    "prob_edges": prob_edges,
    "labels": labels,
    "soft": soft_labels,
    "weights": weights,
    "weights_extra": weights_extra,
    "targets": targets,
    "shapes": shapes,
    "scale": scale,
    "relations": relations,
    "contexts": contexts,
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
