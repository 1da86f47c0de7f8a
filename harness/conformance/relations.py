"""Identities that must hold between two results of one framework: which cells pair up, and what maps one onto
the other.

A pair is two eager cells of the same dtype, device and reduction, of the same framework but for `backend`: an
API of a package that runs on several backends (Keras) declares `same_api_on` the same API on its reference
backend, another framework of the audit, whose result it must equal within the pass tolerance. For the identities
on inputs
(symmetry, pos_weight = 1, weight linearity, permutation) both cells are the same implementation, one on a base
case and one on its partner case (`cases.relations`); for the identities between APIs (probabilities vs logits,
two-class softmax, focal loss with γ = 0, label smoothing) an implementation declares `same_as` the one it must
equal. The relation row belongs to the implementation named `impl` of the pair, on the base case.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from cases import Case
from cases.relations import partner_of
from harness.conformance.plan import Cell
from implementations import REDUCTIONS, Adapter, Implementation

__all__ = ["RELATIONS", "Pair", "Relation", "relation_pairs"]


@dataclass(frozen=True, slots=True)
class Relation:
    """An identity: the partner's result equals `loss_factor` (`grad_factor`) times the base's, element by
    element (in reverse order for `reversed`); `grad_factor` None: the gradients are not comparable."""

    name: str
    statement: str
    loss_factor: float = 1.0
    grad_factor: float | None = 1.0
    reversed: bool = False
    same_impl: bool = True  # both sides are one implementation (on a base and a partner case)

    @property
    def quantities(self) -> tuple[str, ...]:
        """The quantities the identity holds for: the loss, and the gradient where it has a factor."""
        return ("loss",) if self.grad_factor is None else ("loss", "grad")

    def mapped(self, quantity: str, base: np.ndarray) -> np.ndarray:
        """The base side's values as the partner side must show them (for a quantity in `quantities`)."""
        factor = self.loss_factor if quantity == "loss" else self.grad_factor
        assert factor is not None, f"{self.name} holds for {self.quantities}, not {quantity}"
        values = np.asarray(base, dtype=np.float64) * factor
        return values.ravel()[::-1].reshape(values.shape) if self.reversed and values.ndim else values


RELATIONS: dict[str, Relation] = {r.name: r for r in (
    Relation("symmetry", "L(x, y) = L(−x, 1 − y) (q → 1 − q for probabilities); the gradient changes sign",
             grad_factor=-1.0),
    Relation("pos_weight_one", "pos_weight = 1 gives the loss without pos_weight"),
    Relation("weight_linear", "doubling the weight doubles the loss and its gradient", 2.0, 2.0),
    Relation("permutation", "reversing the elements reverses the per-element results; mean and sum are unchanged",
             reversed=True),
    Relation("probs_logits", "BCE(σ(x)) with the probabilities API equals BCE with logits at x (σ(x) rounded)",
             grad_factor=None, same_impl=False),
    Relation("softmax2", "two-class softmax cross-entropy on [0, x] with targets [1 − y, y] equals BCE with logits",
             same_impl=False),
    Relation("focal_gamma0", "the sigmoid focal loss with γ = 0 (no α) equals BCE with logits", same_impl=False),
    Relation("label_smoothing", "label_smoothing = s equals BCE on the labels y(1 − s) + s/2", same_impl=False),
    Relation("backend", "the same API of the same package on its reference backend (Keras on TensorFlow) gives the "
             "same result", same_impl=False),
)}


class Pair(NamedTuple):
    """Two cells whose results an identity links: `base` is mapped onto `partner`; the row is `impl`'s on `case`
    (an index into the cases)."""

    relation: str
    base: Cell
    partner: Cell
    impl: str
    case: int


def _runs_anywhere(impl: Implementation) -> bool:
    """An API that runs on every case, or on the `path` cases only for its cost: with --full it runs every case,
    and its identities hold there too (the runner keeps the pairs whose two cells it planned)."""
    return impl.runs_on in (None, "path")


def _eligible(impl: Implementation, case: Case) -> bool:
    return impl.input_form == case.input_form and _runs_anywhere(impl) and not impl.sigmoid_inside


def _pairs_of(adapter: type[Adapter], cases: Sequence[Case]) -> Iterator[tuple[str, str, int, str, int, str, int]]:
    """(relation, base impl, base case, partner impl, partner case, row impl, row case) for every identity."""
    index = {case.name: i for i, case in enumerate(cases)}
    impls = {impl.impl: impl for impl in adapter.implementations}
    for p, case in enumerate(cases):
        found = partner_of(case)
        if found is None or found[1] not in index:
            continue
        relation, b = found[0], index[found[1]]
        if relation in RELATIONS and RELATIONS[relation].same_impl:
            for impl in adapter.implementations:
                if _eligible(impl, case) and (relation != "pos_weight_one" or impl.api_pos_weight is not None):
                    yield relation, impl.impl, b, impl.impl, p, impl.impl, b
        for impl in adapter.implementations:  # APIs that equal another on the partner's inputs
            twin = impls.get(impl.same_as or "")
            if impl.relation != relation or twin is None:
                continue
            if relation == "probs_logits" and impl.input_form == case.input_form:
                yield relation, twin.impl, b, impl.impl, p, impl.impl, b
            if relation == "label_smoothing" and twin.input_form == case.input_form:
                yield relation, twin.impl, p, impl.impl, b, impl.impl, b
    yield from _same_inputs(adapter, cases)


def _same_inputs(adapter: type[Adapter], cases: Sequence[Case]) -> Iterator[tuple[str, str, int, str, int, str, int]]:
    """The identities between two APIs on the same inputs: another API it must equal (a softmax, a focal loss),
    or the same API on the package's reference backend."""
    impls = {impl.impl: impl for impl in adapter.implementations}
    for impl in adapter.implementations:
        twin = impls.get(impl.same_as or "")
        if impl.same_api_on is not None:
            relation, other = "backend", impl.same_api_on
        elif twin is not None and impl.relation in ("softmax2", "focal_gamma0"):
            relation, other = impl.relation, twin.impl
        else:
            continue
        for c, case in enumerate(cases):
            if impl.input_form == case.input_form and (_runs_anywhere(impl) or impl.runs_on in case.tags):
                yield relation, other, c, impl.impl, c, impl.impl, c


def relation_pairs(adapter: type[Adapter], cases: Sequence[Case], dtypes: Sequence[str],
                   devices: Sequence[str]) -> list[Pair]:
    """Every pair of eager cells an identity links, for the adapter's dtypes, whether or not a run plans both
    cells (a `path`-limited API's pairs off the `path` cases run only with --full): a run keeps those it planned."""
    pairs = []
    for relation, base_impl, b, partner_impl, p, impl, c in _pairs_of(adapter, cases):
        for dtype in (d for d in dtypes if d in adapter.dtypes and cases[b].runs_in(d) and cases[p].runs_in(d)):
            for device in devices:
                for reduction in REDUCTIONS:
                    pairs.append(Pair(relation, Cell(base_impl, b, dtype, device, reduction),
                                      Cell(partner_impl, p, dtype, device, reduction), impl, c))
    return pairs
