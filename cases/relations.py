"""Cases for identities and contexts: base cases, and for each its partners, the inputs an identity maps it to.

A partner case carries the tag `partner:<relation>:<base>`: the harness compares an implementation's result on it
with the result on the base case (L(x, y) = L(−x, 1 − y) for `mirror`, …). Every partner is also an ordinary
case, judged against its own exact value. The contexts family holds logits for the APIs that compute σ(x) inside
the function before a probabilities loss (graph rewrites act there), and out-of-range targets under the compiled
paths (a path that accepts what eager rejects).
"""

from __future__ import annotations

import numpy as np

from cases.extreme import grid
from cases.model import Case

__all__ = ["PARTNER_TAG", "SMOOTHING", "contexts", "partner_of", "relations", "smoothed"]

PARTNER_TAG = "partner"
# |x| = 37.43 and 40 in float64: e^-|x| is below float64's half ULP of 1, where formulas that add it to 1 lose
# the loss and the gradient (upstream reports at both points); 16.6 and 20 are float32's counterparts. The grids
# have the shapes of other built-in cases (72, 18 and 28 elements): JAX's eager primitives, compiled per shape
# and dtype, serve them all.
_LOGITS = (0.0, 0.125, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 5.0, -5.0, 10.0, -10.0, 16.6, -16.6, 20.0, -20.0, 30.0,
           -30.0, 37.43, -37.43, 40.0, -40.0, 3.0, -3.0)
_LABELS = (0.0, 1.0, 0.25)
_PROBS = (0.5, 0.25, 0.875, 1e-3, 0.999, 1e-6)
SMOOTHING = 0.25  # Keras's label_smoothing: y·(1 − s) + s/2, exact in every dtype for these labels


def partner_of(case: Case) -> tuple[str, str] | None:
    """(relation, base case name) for a partner case, else None."""
    for tag in case.tags:
        if tag.startswith(PARTNER_TAG + ":"):
            _, relation, base = tag.split(":", 2)
            return relation, base
    return None


def _partner(base: Case, relation: str, suffix: str, description: str, **values: object) -> Case:
    fields: dict[str, object] = dict(x=base.x, y=base.y, weight=base.weight, pos_weight=base.pos_weight)
    fields.update(values)
    return Case(f"{base.name}~{suffix}", base.family, fields.pop("input_form", base.input_form),  # type: ignore[arg-type]
                description=f"{description} (partner of {base.name})", tags=(f"{PARTNER_TAG}:{relation}:{base.name}",),
                **fields)  # type: ignore[arg-type]


def _reversed(values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    return None if values is None else values.ravel()[::-1].reshape(shape)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) in float64 with its relative precision kept for x ≪ 0 (e^x / (1 + e^x) there)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def partners(base: Case, weights_only: bool = False) -> list[Case]:
    """The partner cases of one base case, for each identity that applies to it (`weights_only`: those where the
    weight matters, weight linearity and permutation, for a base that repeats another with weights)."""
    out = [_partner(base, "weight_linear", "w2", "weight doubled: L and its gradient double",
                    weight=np.asarray(2.0) if base.weight is None else 2.0 * base.weight)]
    if base.pos_weight is None:  # the mirror image of a pos_weight loss is another loss
        mirrored = -base.x if base.input_form == "logits" else 1.0 - base.x
        out.append(_partner(base, "symmetry", "mirror", "x → −x (q → 1 − q), y → 1 − y: the same loss, the "
                            "gradient negated", x=mirrored, y=1.0 - base.y))
    if all(v is None or v.shape in ((), base.x.shape) for v in (base.weight, base.pos_weight)):
        shape = base.x.shape
        out.append(_partner(base, "permutation", "perm", "the elements in reverse order: the same mean and sum",
                            x=_reversed(base.x, shape), y=_reversed(base.y, shape),
                            weight=base.weight if base.weight is None or base.weight.shape == () else
                            _reversed(base.weight, shape),
                            pos_weight=base.pos_weight if base.pos_weight is None or base.pos_weight.shape == ()
                            else _reversed(base.pos_weight, shape)))
    if weights_only:
        return [case for case in out if partner_of(case)[0] in ("weight_linear", "permutation")]  # type: ignore[index]
    if base.input_form != "logits":
        return out
    if base.pos_weight is None:
        out.append(_partner(base, "pos_weight_one", "pw1", "pos_weight = 1: the same as no pos_weight",
                            pos_weight=np.ones(base.x.shape[-1:])))
    out.append(_partner(base, "probs_logits", "sigmoid", "q = σ(x) rounded to float64: BCE(q) against BCE with "
                        "logits", input_form="probs", x=_sigmoid(base.x), pos_weight=None))
    out.append(smoothed(base))
    return out


def smoothed(base: Case) -> Case:
    """The case with its labels smoothed as Keras's label_smoothing = SMOOTHING does: y(1 − s) + s/2."""
    return _partner(base, "label_smoothing", "smooth", f"labels smoothed by {SMOOTHING}: y(1 − s) + s/2",
                    y=base.y * (1.0 - SMOOTHING) + SMOOTHING / 2)


def relations(_: int) -> list[Case]:
    """Base cases for the identities (also where the further derivatives are judged), and their partners."""
    x, y = grid(list(_LOGITS), list(_LABELS))
    q, yq = grid(list(_PROBS), list(_LABELS))
    weight = np.resize(np.array([0.5, 2.0, 3.0, 1.5]), x.shape)
    bases = [
        Case("relation_logits", "relations", "logits", x, y, tags=("relation", "derivative"),
             description="x from 0 to ±40 (±37.43 and ±40 lose e^-|x| next to 1 in float64) against y = 0, 1, 0.25"),
        Case("relation_logits_weighted", "relations", "logits", x, y, weight=weight,
             description="the same, with per-element weights 0.5, 2, 3, 1.5 (for the identities on weights)"),
        Case("relation_probs", "relations", "probs", q, yq, tags=("relation", "derivative"),
             description="q from 1e-6 to 0.999 against y = 0, 1, 0.25"),
    ]
    return bases + [partner for base in bases for partner in partners(base, weights_only=base.weight is not None)]


_MIXED = ("bfloat16",)  # mixed precision as training runs it (each compiled graph costs seconds)


def contexts(_: int) -> list[Case]:
    """What the case file alone does not say: σ computed inside the function (then a probabilities API), the
    loss inside torch.autocast, and bfloat16 inputs with a float32 weight or target, each in eager and compiled
    modes."""
    x, y = grid([20.0, -20.0, 30.0, -30.0, 16.6, -16.6, 10.0, -10.0, 5.0, -5.0, 2.0, -2.0, 1.0, 0.0], [0.0, 1.0])
    q, yq = grid([0.5, 0.3, 0.7, 0.05, 0.95, 0.001], [0.0, 1.0])
    xs, ys = grid([0.5, -0.5, 2.0, -2.0, 8.0, -8.0], [0.0, 1.0])
    weight = np.resize(np.array([0.5, 2.0, 1.5, 3.0]), q.shape)
    return [
        # torch.autocast is for float32 models: its cases are float32's
        Case("context_autocast_probs", "contexts", "probs", q, yq, dtypes=("float32",),
             tags=("context", "path", "autocast"), description="float32 probabilities, the loss inside torch.autocast"),
        Case("context_autocast_logits", "contexts", "logits", xs, ys, dtypes=("float32",),
             tags=("context", "path", "autocast"), description="float32 logits, the loss inside torch.autocast"),
        Case("context_sigmoid", "contexts", "logits", x, y, tags=("context", "path", "sigmoid"),
             description="σ(x) computed in the function, then the probabilities loss: |x| up to 30 saturates σ in "
                         "float32 (a graph rewrite that unwraps σ answers another question)"),
        Case("context_mixed_weight_probs", "contexts", "probs", q, yq, weight=weight, weight_dtype="float32",
             dtypes=_MIXED, tags=("context", "path"),
             description="bfloat16 probabilities with a float32 weight: the compiled result's dtype against eager's"),
        Case("context_mixed_logits", "contexts", "logits", xs, ys, weight=weight, weight_dtype="float32",
             y_dtype="float32", dtypes=_MIXED, tags=("context", "path"),
             description="bfloat16 logits with a float32 weight and float32 targets: the compiled result's dtype "
                         "against eager's"),
    ]
