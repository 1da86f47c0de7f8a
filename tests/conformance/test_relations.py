"""Identities between two results: which cells pair up, and a planted violation of each one trips its row."""

from __future__ import annotations

import numpy as np
import pytest

from cases import Case, builtin_cases
from cases.relations import partner_of
from harness.conformance.plan import Cell
from harness.conformance.relations import RELATIONS, Pair, relation_pairs
from harness.conformance.rows import Judge
from harness.verdict.oracle import reference
from harness.verdict.variants import variant_inputs
from implementations import Output, adapter_classes

CASES = builtin_cases(0, ["relations"])
ADAPTERS = adapter_classes()


def _cases(framework: str) -> list[Case]:
    """The relations family, with the seed cases for Keras (whose APIs run on the `path` cases)."""
    return CASES + builtin_cases(0, ["seed"]) if framework.startswith("keras_") else CASES


def _pairs(framework: str, dtype: str = "float64") -> list[Pair]:
    return relation_pairs(ADAPTERS[framework], _cases(framework), [dtype], ["cpu"])


def test_every_relation_pairs_up_somewhere() -> None:
    found = {pair.relation for framework in ADAPTERS for pair in _pairs(framework)}
    assert found == set(RELATIONS)


def test_pairs_link_a_base_case_and_its_partner() -> None:
    for pair in _pairs("torch"):
        base, partner = CASES[pair.base.case_index], CASES[pair.partner.case_index]
        if RELATIONS[pair.relation].same_impl:
            assert pair.base.impl == pair.partner.impl == pair.impl
            assert partner_of(partner) == (pair.relation, base.name)
        assert pair.base.reduction == pair.partner.reduction and pair.base.dtype == pair.partner.dtype


def test_pos_weight_one_only_where_the_api_takes_pos_weight() -> None:
    impls = {pair.impl for pair in _pairs("torch") if pair.relation == "pos_weight_one"}
    assert impls == {"torch.logits", "torch.lse_formula"}  # torch.probs has no pos_weight


def _exact_output(judge: Judge, cell: Cell) -> Output:
    """What a framework computing the exact value rounded to float64 returns for a cell."""
    ref = reference(*variant_inputs(judge.cases, judge.reference_key(cell)))
    judge.references[judge.reference_key(cell)] = ref
    loss, grad = ref.loss(cell.reduction)[0], ref.grad(cell.reduction)[0]
    return Output(np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64), "float64", "float64",
                  api="exact")


def _relation_rows(pair: Pair, framework: str, plant: float = 0.0) -> dict[str, str]:
    """The relation rows' statuses by quantity, the partner's loss moved by `plant` relative."""
    judge = Judge(_cases(framework), ADAPTERS)  # a `backend` pair's two sides are two frameworks
    for side in (pair.base, pair.partner):
        judge.pairs.setdefault(side, []).append(pair)
    rows = judge.result(framework, pair.base, _exact_output(judge, pair.base))
    partner = _exact_output(judge, pair.partner)
    moved = Output(partner.loss * (1.0 + plant), partner.grad * (1.0 + plant), "float64", "float64", "exact")
    rows += judge.result(framework, pair.partner, moved)
    return {row.quantity: row.status for row in rows if row.check == "relation"}


def _one(relation: str, framework: str, reduction: str) -> Pair:
    return next(p for p in _pairs(framework) if p.relation == relation and p.base.reduction == reduction)


_FRAMEWORK = {"softmax2": "torch", "focal_gamma0": "jax", "label_smoothing": "tensorflow", "backend": "keras_jax"}


@pytest.mark.parametrize("relation", sorted(RELATIONS))
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_exact_sides_satisfy_the_identity(relation: str, reduction: str) -> None:
    pair = _one(relation, _FRAMEWORK.get(relation, "numpy"), reduction)
    statuses = _relation_rows(pair, _FRAMEWORK.get(relation, "numpy"))
    if (relation, reduction) == ("probs_logits", "mean"):  # σ(40) rounds to 1: BCE(q) is ∞, nothing to compare
        assert statuses == {"loss": "unsupported"}
        return
    assert statuses and set(statuses.values()) <= {"pass", "inexact"}, statuses
    if RELATIONS[relation].grad_factor is None:
        assert set(statuses) == {"loss"}  # d/dq and d/dx are different quantities
    if relation not in ("probs_logits", "label_smoothing"):  # exact inputs: the identity holds to the bit
        assert set(statuses.values()) == {"pass"}


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_a_planted_violation_trips_the_identity(relation: str) -> None:
    framework = _FRAMEWORK.get(relation, "numpy")
    statuses = _relation_rows(_one(relation, framework, "none"), framework, plant=1e-3)
    assert statuses["loss"] == "fail", statuses


def test_symmetry_negates_the_gradient() -> None:
    relation = RELATIONS["symmetry"]
    assert relation.mapped("grad", np.array([0.25, -1.0])).tolist() == [-0.25, 1.0]
    assert relation.mapped("loss", np.array([0.25])).tolist() == [0.25]


def test_permutation_reverses_element_wise_results_and_keeps_scalars() -> None:
    relation = RELATIONS["permutation"]
    assert relation.mapped("loss", np.array([1.0, 2.0, 3.0])).tolist() == [3.0, 2.0, 1.0]
    assert relation.mapped("loss", np.array(6.0)).tolist() == 6.0


def test_the_default_audit_pairs_identities_in_every_framework_and_asks_every_derivative() -> None:
    from harness.conformance.plan import Scope, jobs_for

    everything = builtin_cases(0)
    for framework, adapter in ADAPTERS.items():
        everywhere = [impl for impl in adapter.implementations if impl.runs_on is None]
        if not everywhere:  # an adapter limited to the `path` cases for its cost (exports, kernels per shape)
            continue
        pairs = relation_pairs(adapter, everything, ["float32"], ["cpu"])
        assert {"symmetry", "weight_linear", "permutation"} <= {pair.relation for pair in pairs}, framework
        asked = {name for job in jobs_for(adapter, everything, ["float32"], ["cpu"], Scope.default())
                 for name in job.derivatives}
        every = {"grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2"}
        own = any(not impl.formula and impl.differentiable for impl in everywhere)
        assert asked == (every if own else set()), framework  # not for formulas of ours (NumPy's, the array API)


def test_context_cases_of_mixed_dtypes_compile_in_their_own_dtypes() -> None:
    from harness.conformance.plan import Scope

    contexts = {case.name: case for case in builtin_cases(0, ["contexts"])}
    scope = Scope.default()
    assert scope.compiles(contexts["context_mixed_weight_probs"], "bfloat16")
    assert not scope.compiles(contexts["context_sigmoid"], "bfloat16")  # no dtypes of its own: float32 only
    assert scope.compiles(contexts["context_sigmoid"], "float32")
    mixed = contexts["context_mixed_weight_probs"].inputs("float16")
    assert mixed.x.dtype == np.float16 and mixed.weight is not None and mixed.weight.dtype == np.float32


def test_a_shard_holds_a_base_case_with_all_its_partners() -> None:
    from harness.conformance.plan import shard_cases
    from harness.store.schema import Shard

    everything = builtin_cases(0)
    seen: set[str] = set()
    for number in (1, 2, 3):
        names = {case.name for case in shard_cases(everything, Shard(number, 3))}
        assert not names & seen  # each case in one shard
        seen |= names
        for case in everything:
            found = partner_of(case)
            if found and case.name in names:
                assert found[1] in names, (case.name, number)
    assert seen == {case.name for case in everything}


def test_an_api_limited_to_the_path_cases_checks_its_identities_on_every_case_with_full() -> None:
    """Keras on JAX runs the `path` cases by default (it compiles per shape) and every case with --full: its
    symmetry and weight identities are checked where both cells run, so only with --full on the relations family."""
    from harness.conformance.keys import planned_rows
    from harness.conformance.plan import Scope

    adapters = {"keras_jax": ADAPTERS["keras_jax"]}

    def relations(scope: Scope) -> set[tuple[str, str]]:
        keys = planned_rows(adapters, CASES, ["float32"], ["cpu"], scope)
        return {(key.relation, key.impl) for key in keys if key.check == "relation"}

    assert relations(Scope.default()) == set()
    full = relations(Scope.everything())
    assert {("symmetry", "keras_jax.ops_logits"), ("weight_linear", "keras_jax.losses_logits"),
            ("permutation", "keras_jax.class_probs")} <= full
