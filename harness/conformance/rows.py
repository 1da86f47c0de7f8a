"""From a worker's answer to conformance rows: the reference check (with documented conventions), the compiled
path against eager, and an element alone against the same element in a batch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cases import Case, CaseInputs, FloatFormat, float_format
from harness.conformance.plan import BATCH_SIZE, Cell, derivative_quantities
from harness.conformance.relations import RELATIONS, Pair, Relation
from harness.store.schema import INLINE_LIMIT, ConformanceRow
from harness.verdict.conventions import Convention, Prediction, predict
from harness.verdict.derivatives import DerivativeReference
from harness.verdict.domain import domain_violation, implied_dtype
from harness.verdict.oracle import Reference, located_reference
from harness.verdict.regions import failures, input_regions
from harness.verdict.tolerance import ELEMENT_STATUSES
from harness.verdict.ulp import Judgement, judge, same_values
from harness.verdict.variants import ReferenceKey, variant_inputs, variant_of
from implementations import Adapter, Derivative, Implementation, Output, Unsupported

__all__ = ["QUANTITIES", "Judge"]

QUANTITIES = ("loss", "grad")
_FAIL_LEVEL = ELEMENT_STATUSES.index("fail")  # element levels from here up fail (fail, nonfinite)
_REPAIRABLE = {"fail", "nonfinite"}  # statuses a documented convention may explain


@dataclass
class Judge:
    """Turns worker messages into rows for one audit. Keeps the eager outputs that compiled paths are compared
    with (only those: `compared`), and holds a compiled result that comes before its eager one (workers run in
    any order) until `release` says the eager cell is settled."""

    cases: Sequence[Case]
    adapters: dict[str, type[Adapter]]
    conventions: Sequence[Convention] = ()
    run_id: str = ""
    compared: set[Cell] = field(default_factory=set)  # eager cells that a compiled path is compared with
    eager: dict[Cell, Output] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    predictions: dict[tuple[str, int, str, str, str, str, str | None], Prediction | None] = field(
        default_factory=dict)
    settled: set[Cell] = field(default_factory=set)  # compared eager cells whose answer has come
    held: dict[Cell, list[tuple[str, Cell, Output | tuple[str, str]]]] = field(default_factory=dict)
    eager_raised: dict[Cell, tuple[str, str]] = field(default_factory=dict)  # compared eager cells that raised
    references: dict[ReferenceKey, Reference] = field(default_factory=dict)
    derivative_references: dict[tuple[int, str], DerivativeReference | str] = field(default_factory=dict)
    pairs: dict[Cell, list[Pair]] = field(default_factory=dict)  # eager cells an identity links, to their pairs
    sides: dict[Cell, Output] = field(default_factory=dict)  # their outputs, until each pair is judged
    failed: dict[Cell, str] = field(default_factory=dict)  # paired cells that gave no output, and why
    kept: set[Cell] = field(default_factory=set)  # sides of identities across frameworks: their outputs are stored
    _implementations: dict[str, Implementation] = field(default_factory=dict, repr=False)
    _owners: dict[str, str] = field(default_factory=dict, repr=False)
    _regions: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    # --------------------------------------------------------------------------------------- the inputs

    def implementation(self, impl: str) -> Implementation:
        """An implementation by its id, from the adapters' class data (looked up once per id)."""
        if not self._implementations:
            self._implementations.update({i.impl: i for adapter in self.adapters.values()
                                          for i in adapter.implementations})
        return self._implementations[impl]

    def owner(self, impl: str) -> str:
        """The framework an implementation belongs to (a `backend` identity's rows come from two frameworks); ""
        for one of a framework the audit does not hold (the other side of such an identity)."""
        if not self._owners:
            self._owners.update({i.impl: name for name, adapter in self.adapters.items()
                                 for i in adapter.implementations})
        return self._owners.get(impl, "")

    def reference_key(self, cell: Cell) -> ReferenceKey:
        """Which exact value a cell is judged against: its case's, in its dtype (for label smoothing, that of the
        smoothed labels)."""
        return ReferenceKey(cell.case_index, cell.dtype, variant_of(self.implementation(cell.impl)))

    def locate_reference(self, key: ReferenceKey, use_cache: bool = True) -> str:
        """The exact value of a reference key into `references` (computed, or read from the cache): where it came
        from, "computed" or the cache's words."""
        with np.errstate(all="ignore"):  # inf - inf in a sum of infinite losses is the data, not a warning
            self.references[key], source = located_reference(*variant_inputs(self.cases, key), use_cache=use_cache)
        return source

    def inputs(self, cell: Cell) -> tuple[CaseInputs, str]:
        """The inputs and input form the cell's exact value is of (see `reference_key`)."""
        return variant_inputs(self.cases, self.reference_key(cell))

    def quantities(self, cell: Cell) -> tuple[str, ...]:
        """The quantities of a cell's reference rows: loss, grad, and the further derivatives judged for it. An
        API that computes σ inside is there for its context: its path rows compare the compiled path with eager
        in that context, and it has no reference rows (BCE of the σ it rounded is a question of its σ)."""
        if cell.check == "batch":
            return QUANTITIES
        impl = self.implementation(cell.impl)
        if impl.sigmoid_inside:
            return ()
        return QUANTITIES + derivative_quantities(impl, self.cases[cell.case_index], cell.mode, cell.check,
                                                  cell.reduction)

    # ---------------------------------------------------------------------------------------------- rows

    def base(self, framework: str, cell: Cell) -> ConformanceRow:
        case = self.cases[cell.case_index]
        impl = self.implementation(cell.impl)
        try:
            api = impl.api_for(case.pos_weight is not None)
        except Unsupported:
            api = impl.api
        return ConformanceRow(
            run_id=self.run_id, framework=framework,
            framework_version=self.versions.get(framework) or self._installed(framework),
            impl=cell.impl, api=api, input_form=impl.input_form, device=cell.device, dtype=cell.dtype,
            case=case.name, family=case.family, reduction=cell.reduction, check=cell.check, mode=cell.mode,
            n=case.size,
        )

    def _installed(self, framework: str) -> str:
        """The version its metadata names, for a framework whose worker never said (read once: it is slow)."""
        if framework not in self.versions:
            self.versions[framework] = self.adapters[framework].installed_version() or ""
        return self.versions[framework]

    def status_rows(self, framework: str, cell: Cell, status: str, error_type: str = "",
                    message: str = "") -> list[ConformanceRow]:
        """Rows for a cell without a result (and for the identities it leaves unchecked)."""
        row = replace(self.base(framework, cell), status=status, error_type=error_type, error_message=message)
        rows = [replace(row, quantity=quantity).with_id() for quantity in self.quantities(cell) or ("loss",)]
        if cell in self.pairs and cell.mode == "eager" and cell.check == "reference":
            self.failed[cell] = f"{status}{f' ({error_type})' if error_type else ''}"
            rows += self._settled(framework, cell)
        return rows

    def _located(self, cell: Cell, verdict: Judgement, shape: tuple[int, ...]) -> dict[str, Any]:
        """The verdict's fields of a row, with the worst element's inputs where they have the result's shape."""
        located: dict[str, Any] = dict(
            max_ulp_error=verdict.max_ulp_error, max_abs_error=verdict.max_abs_error,
            max_rel_error=verdict.max_rel_error, n_bad=verdict.n_bad, got=verdict.got, expected=verdict.expected)
        if verdict.worst_index is not None:  # the case's own inputs (an API's σ(x) is located at its x)
            inputs = self.cases[cell.case_index].inputs(cell.dtype)
            located["worst_index"] = json.dumps(list(verdict.worst_index))
            for name, values in (("worst_x", inputs.x), ("worst_y", inputs.y)):
                if values.shape == shape:  # not where a result was broadcast past the inputs
                    located[name] = float(np.asarray(values, dtype=np.float64)[verdict.worst_index])
        return located

    # ------------------------------------------------------------------------------------ the messages

    def _outside(self, cell: Cell) -> str | None:
        inputs, form = self.inputs(cell)
        return domain_violation(inputs, form)

    def raised(self, framework: str, cell: Cell, error_type: str, message: str) -> list[ConformanceRow]:
        """Rows for a cell whose computation raised; a compiled path's that differs from eager's answer gets a
        path row too (a path that raises where eager computes, or the reverse, is a `fail` of the path)."""
        if cell.mode == "eager" and cell in self.compared:
            self.eager_raised[cell] = (error_type, message)
            self.settled.add(cell)
        elif cell.mode != "eager" and (counterpart := cell._replace(mode="eager")) in self.compared \
                and counterpart not in self.settled:
            self.held.setdefault(counterpart, []).append((framework, cell, (error_type, message)))
            return []
        outside = self._outside(cell)
        note = f" (input outside the domain: {outside})" if outside else ""
        rows = self.status_rows(framework, cell, "rejected" if outside else "error", error_type, message + note)
        eager = self.eager.get(cell._replace(mode="eager"))
        if cell.mode != "eager" and eager is not None:
            rows += self._path_status_rows(framework, cell, f"{cell.mode} raised {error_type}: {message}; eager "
                                                            "computed a result")
        return rows

    def result(self, framework: str, cell: Cell, output: Output, ref: Reference | None = None
               ) -> list[ConformanceRow]:
        """Rows for a computed result: against the reference (with the further derivatives asked for), for a
        compiled mode also against eager, and the identities it completes. `ref`: the exact value, where the
        caller has it (else the one computed for the cell's reference key)."""
        if ref is not None:
            self.references.setdefault(self.reference_key(cell), ref)
        if cell.mode == "eager":
            if cell in self.compared:
                self.eager[cell] = output
                self.settled.add(cell)
        elif not output.compiled:
            return self.status_rows(framework, cell, "error", "NotCompiled",
                                    f"{cell.mode} gave no evidence that compiled code ran")
        elif (counterpart := cell._replace(mode="eager")) in self.compared and counterpart not in self.settled:
            self.held.setdefault(counterpart, []).append((framework, cell, output))
            return []
        ref = self.references[self.reference_key(cell)]
        base = replace(self.base(framework, cell), api=output.api)
        quantities = self.quantities(cell)
        rows = [self._reference_row(base, cell, quantity, output, ref) for quantity in quantities
                if quantity in QUANTITIES]
        rows += [self._derivative_row(base, cell, name, output.derivatives.get(name))
                 for name in quantities if name not in QUANTITIES]
        counterpart = cell._replace(mode="eager")
        if cell.mode != "eager" and (eager := self.eager.get(counterpart)) is not None:
            rows += [self._path_row(base, cell, quantity, output, eager, ref)
                     for quantity in self.path_quantities(cell)]
        elif cell.mode != "eager" and counterpart in self.eager_raised:
            error_type, message = self.eager_raised[counterpart]
            rows += self._path_status_rows(framework, cell, f"eager raised {error_type}: {message}; {cell.mode} "
                                                            "returned a result")
        if cell.mode == "eager" and cell in self.pairs:
            rows += self._relations(framework, cell, output)
        return rows

    def release(self, eager: Cell) -> list[ConformanceRow]:
        """The eager cell's answer has come (whatever it was): the rows of the compiled results held for it."""
        self.settled.add(eager)
        rows = []
        for framework, cell, answer in self.held.pop(eager, []):
            if isinstance(answer, Output):
                rows += self.result(framework, cell, answer)
            else:
                rows += self.raised(framework, cell, *answer)
        return rows

    def _path_status_rows(self, framework: str, cell: Cell, message: str) -> list[ConformanceRow]:
        """A compiled path that raises where eager computes, or computes where eager raises: a `fail` of the
        path, for each quantity."""
        row = replace(self.base(framework, cell), check="path", status="fail", error_type="PathStatus",
                      error_message=message)
        return [replace(row, quantity=quantity).with_id() for quantity in self.path_quantities(cell)]

    def path_quantities(self, cell: Cell) -> tuple[str, ...]:
        """What a compiled path is compared with eager on: the loss, and the gradient where the API has one."""
        return QUANTITIES if self.implementation(cell.impl).differentiable else ("loss",)

    # ------------------------------------------------------------------------------------- identities

    def pair_up(self, pairs: Sequence[Pair], planned: set[Cell]) -> None:
        """Register the pairs whose two cells run. Of an identity across two frameworks (`backend`), every side
        that runs is `kept`: its output is stored, so that a merge with a run holding the other side checks it
        (on the cases small enough to keep, as cases.json keeps them value by value: a --full run's longest
        reductions would cost gigabytes of JSON)."""
        for pair in pairs:
            sides = (pair.base, pair.partner)
            if self.owner(pair.base.impl) != self.owner(pair.partner.impl):  # cases up to INLINE_LIMIT elements
                self.kept.update(side for side in sides if side in planned
                                 and self.cases[side.case_index].size <= INLINE_LIMIT)
            if all(side in planned for side in sides):
                for side in sides:
                    self.pairs.setdefault(side, []).append(pair)

    def check_pair(self, pair: Pair, base: Output, partner: Output) -> list[ConformanceRow]:
        """The rows of one identity between two given outputs (stored ones, in a merge)."""
        self.sides.update({pair.base: base, pair.partner: partner})
        try:
            return self._relation_rows(pair)
        finally:
            for side in (pair.base, pair.partner):
                self.sides.pop(side, None)

    def _relations(self, framework: str, cell: Cell, output: Output) -> list[ConformanceRow]:
        self.sides[cell] = output
        return self._settled(framework, cell)

    def _settled(self, framework: str, cell: Cell) -> list[ConformanceRow]:
        """The rows of every identity of `cell` whose two sides have now both answered: judged where both gave a
        result, else `unsupported` (the identity could not be checked), so that each has its rows."""
        rows = []
        for pair in self.pairs[cell]:
            sides = (pair.base, pair.partner)
            if not all(side in self.sides or side in self.failed for side in sides):
                continue
            if all(side in self.sides for side in sides):
                rows += self._relation_rows(pair)
                continue
            side = next(side for side in sides if side in self.failed)
            why = (f"not checked: {side.impl} on {self.cases[side.case_index].name} gave no result "
                   f"({self.failed[side]})")
            row = replace(self.base(self.owner(pair.impl), Cell(pair.impl, pair.case, side.dtype, side.device,
                                                                 side.reduction)),
                          check="relation", relation=pair.relation, status="unsupported", error_message=why,
                          input_form=self.cases[pair.case].input_form)
            rows += [replace(row, quantity=quantity).with_id() for quantity in self.relation_quantities(pair)]
        return rows

    def _pair_format(self, pair: Pair) -> FloatFormat:
        """The format a pair is compared in: its dtype's, or the coarser one its APIs compute in (Keras's loss
        class computes float64 in float32 on every backend: a bit of float32 is not 5e8 ULPs of float64)."""
        computes = (self.implementation(cell.impl).compute_dtype for cell in (pair.base, pair.partner))
        formats = [float_format(pair.base.dtype), *(float_format(dtype) for dtype in computes if dtype is not None)]
        return min(formats, key=lambda fmt: fmt.precision)

    def relation_quantities(self, pair: Pair) -> tuple[str, ...]:
        """The quantities an identity is checked on: its own, less the gradient where a side has none."""
        differentiable = all(self.implementation(side.impl).differentiable for side in (pair.base, pair.partner))
        return tuple(q for q in RELATIONS[pair.relation].quantities if differentiable or q != "grad")

    def _exact(self, cell: Cell, quantity: str) -> np.ndarray:
        ref = self.references[self.reference_key(cell)]
        hi, lo, _ = ref.loss(cell.reduction) if quantity == "loss" else ref.grad(cell.reduction)
        return np.asarray(hi, dtype=np.float64) + np.asarray(lo, dtype=np.float64)

    def _relation_rows(self, pair: Pair) -> list[ConformanceRow]:
        """The identity between the pair's outputs, per quantity, within the pass tolerance of the dtype plus
        what separates the two sides' exact values (nothing, for the identities on exact inputs)."""
        relation = RELATIONS[pair.relation]
        cell = Cell(pair.impl, pair.case, pair.base.dtype, pair.base.device, pair.base.reduction)
        # the row is on the base case: its inputs' form, whatever the implementation's (probabilities of logits)
        row = replace(self.base(self.owner(pair.impl), cell), check="relation", relation=pair.relation,
                      input_form=self.cases[pair.case].input_form)
        rows = []
        for quantity in self.relation_quantities(pair):
            side, partner = (getattr(self.sides[c], quantity) for c in (pair.base, pair.partner))
            if side is None or partner is None:  # an autodiff that raised: its own rows say so
                fields: dict[str, Any] = dict(
                    status="unsupported", error_message=f"{relation.statement}: not checked, a side has no {quantity}")
            else:
                fields = self._relation_fields(relation, pair, cell, quantity, relation.mapped(quantity, side),
                                               partner)
            rows.append(replace(row, quantity=quantity, **fields).with_id())
        return rows

    def _relation_fields(self, relation: Relation, pair: Pair, cell: Cell, quantity: str, mapped: np.ndarray,
                         got: np.ndarray) -> dict[str, Any]:
        partner_case = self.cases[pair.partner.case_index].name
        statement = f"{relation.statement} ({pair.partner.impl} on {partner_case})"
        if got.shape != mapped.shape:
            return dict(status="fail", error_message=f"{statement}: shapes {got.shape} and {mapped.shape}")
        exact_mapped = relation.mapped(quantity, self._exact(pair.base, quantity))
        exact_got = self._exact(pair.partner, quantity)
        if exact_got.shape != got.shape or exact_mapped.shape != mapped.shape:  # both broadcast what has no value
            return dict(status="unsupported", error_message=f"{statement}: not checked, the inputs have no BCE value")
        with np.errstate(invalid="ignore"):
            apart = np.where(exact_got == exact_mapped, 0.0, np.abs(exact_got - exact_mapped))
        # where the two exact values differ without bound (σ(x) rounded to 1: BCE(q) is ∞, BCE with logits is x)
        # the identity says nothing: those elements are left out
        apart = np.nan_to_num(apart, nan=np.inf, posinf=np.inf)
        apart = np.where(np.isinf(exact_got) & (exact_got == exact_mapped), 0.0, apart)
        incomparable = np.isinf(apart)
        if incomparable.all() and incomparable.size:  # nothing to compare (a mean over an infinite element)
            return dict(status="unsupported", error_message=f"{statement}: not checked, the exact sides differ "
                                                            "without bound everywhere")
        got, mapped = np.where(incomparable, 0.0, got), np.where(incomparable, 0.0, mapped)
        apart = np.where(incomparable, 0.0, apart)
        reduced_over = self.references[self.reference_key(pair.base)].n if (
            quantity == "loss" and pair.base.reduction != "none") else None
        verdict = judge(got, mapped, np.zeros_like(mapped), apart, self._pair_format(pair), reduced_over)
        message = statement + ("" if verdict.status == "pass" else
                               f": {verdict.n_bad} element(s) beyond the pass tolerance")
        if incomparable.any():
            message += f"; {np.count_nonzero(incomparable)} element(s) where the exact sides differ without bound " \
                       "left out"
        return dict(status=verdict.status, error_message=message, out_dtype="",
                    **self._located(cell, verdict, got.shape))

    # ------------------------------------------------------------------------------------ derivatives

    def _derivative_row(self, base: ConformanceRow, cell: Cell, name: str,
                        answer: Derivative | None) -> ConformanceRow:
        """A further derivative against its exact value (the loss's statuses; no conventions apply)."""
        row = replace(base, quantity=name)
        if answer is None:
            return replace(row, status="error", error_message=f"no {name} returned").with_id()
        if answer.status:
            status = "rejected" if answer.status == "error" and self._outside(cell) else answer.status
            return replace(row, status=status, error_type=answer.error_type,
                           error_message=answer.message).with_id()
        exact = self.derivative_references.get((cell.case_index, cell.dtype))
        if not isinstance(exact, DerivativeReference):
            return replace(row, status="fail", error_type="SilentBroadcast", out_dtype=answer.dtype,
                           error_message=f"returned {name} although the inputs have none ({exact})").with_id()
        want = exact.quantity(name, cell.reduction)
        got = np.asarray(answer.values, dtype=np.float64)
        verdict = judge(got, want.hi, want.lo, want.band, float_format(cell.dtype), want.reduced_over)
        located = self._located(cell, verdict, got.shape)
        elementwise = want.reduced_over is None and got.shape == self.cases[cell.case_index].x.shape
        status, error_type, messages = verdict.status, "", [verdict.message] if verdict.message else []
        implied = _derivative_dtype(self.cases[cell.case_index].inputs(cell.dtype), name)
        if answer.dtype and answer.dtype != implied:  # as for the gradient: the dtype of what it differentiates by
            error_type = "OutDtype"
            messages.append(f"result dtype {answer.dtype}, but the inputs imply {implied}")
            status = "fail" if status in ("pass", "inexact") else status
        return replace(row, status=status, out_dtype=answer.dtype, error_type=error_type,
                       error_message="; ".join(messages),
                       failures=self._failures(cell, verdict, got, None) if elementwise else "",
                       **located).with_id()

    def batch(self, framework: str, cell: Cell, alone: Output, batched: Output) -> list[ConformanceRow]:
        """Each element alone against the same element inside a batch of BATCH_SIZE: the bits must agree."""
        base = replace(self.base(framework, cell), api=alone.api, out_dtype=batched.out_dtype, n=BATCH_SIZE)
        rows = []
        for quantity in self.quantities(cell):
            single = alone.loss if quantity == "loss" else alone.grad
            many = batched.loss if quantity == "loss" else batched.grad
            row = replace(base, quantity=quantity)
            if quantity == "grad" and not self.implementation(cell.impl).differentiable:
                row = replace(row, status="unsupported", error_type="NoGradient",
                              error_message=f"{cell.impl} has no gradient: it computes the loss only")
            elif single is None or many is None or many.shape != (BATCH_SIZE,):
                raised = alone.grad_error or batched.grad_error if quantity == "grad" else None
                shape = getattr(many, "shape", None)
                why = f"{raised[0]}: {raised[1]}" if raised else f"batch result has shape {shape}"
                row = replace(row, status="error", error_message=why)
            else:
                row = replace(row, **self._batch_fields(cell, single, many))
            rows.append(row.with_id())
        return rows

    def _batch_fields(self, cell: Cell, single: np.ndarray, many: np.ndarray) -> dict[str, Any]:
        """Status and worst position of a batch against its elements computed alone."""
        expected = single[np.resize(np.arange(single.size), BATCH_SIZE)]
        differing = np.flatnonzero(~same_values(many, expected))
        if not differing.size:
            return dict(status="pass", n_bad=0, max_ulp_error=0.0, max_abs_error=0.0, max_rel_error=0.0)
        inputs = self.cases[cell.case_index].inputs(cell.dtype)
        verdict = judge(many, expected, np.zeros_like(expected), np.zeros_like(expected), float_format(cell.dtype),
                        None)
        worst = differing[0]
        element = int(worst % single.size)
        return dict(status="fail", n_bad=int(differing.size), max_ulp_error=verdict.max_ulp_error,
                    max_abs_error=verdict.max_abs_error, max_rel_error=verdict.max_rel_error, got=float(many[worst]),
                    expected=float(expected[worst]), worst_index=json.dumps([element]),
                    worst_x=float(inputs.x.ravel()[element].astype(np.float64)),
                    worst_y=float(inputs.y.ravel()[element].astype(np.float64)),
                    error_message=f"{differing.size} of {BATCH_SIZE} batch positions differ from the element "
                                  f"computed alone; first at batch position {worst}")

    # ------------------------------------------------------------------------------------------ checks

    def _reference_row(self, base: ConformanceRow, cell: Cell, quantity: str, output: Output,
                       ref: Reference) -> ConformanceRow:
        got = output.loss if quantity == "loss" else output.grad
        out_dtype = output.out_dtype if quantity == "loss" else output.grad_dtype
        row = replace(base, out_dtype=out_dtype or "", quantity=quantity)
        if got is None and quantity == "grad" and not self.implementation(cell.impl).differentiable:
            return replace(row, status="unsupported", error_type="NoGradient",
                           error_message=f"{cell.impl} has no gradient: it computes the loss only").with_id()
        if got is None and output.grad_error is not None and quantity == "grad":  # the loss computed: not rejected
            return replace(row, status="error", error_type=output.grad_error[0],
                           error_message=output.grad_error[1]).with_id()
        if got is None:
            return replace(row, status="error", error_message=f"no {quantity} returned").with_id()
        if ref.undefined is not None:
            message = (f"returned a result of shape {got.shape} although the inputs have no BCE value "
                       f"({ref.undefined}): a silent broadcast")
            return replace(row, status="fail", error_type="SilentBroadcast", error_message=message).with_id()
        hi, lo, band = ref.loss(cell.reduction) if quantity == "loss" else ref.grad(cell.reduction)
        reduced_over = ref.n if (quantity == "loss" and cell.reduction != "none") else None
        fmt = float_format(cell.dtype)
        verdict, deviation = judge(got, hi, lo, band, fmt, reduced_over), ""
        if verdict.status in _REPAIRABLE and got.shape == np.shape(hi):
            verdict, deviation = self._explain(cell, quantity, got, verdict, (hi, lo, band), fmt, reduced_over,
                                               self._compute_dtype(base.framework, cell))
        status, messages = verdict.status, [verdict.message] if verdict.message else []
        if deviation:
            convention = next(c for c in self.conventions if c.id == deviation)
            explained = int(np.count_nonzero(verdict.levels == 2)) if verdict.levels is not None else 0
            what = "matches" if status == "deviation" else f"explains {explained} element(s) of"
            messages.append(f"{what} the documented convention {convention.id}: {convention.reason}")
            deviation = deviation if status == "deviation" else ""
        expected_dtype = implied_dtype(self.inputs(cell)[0], quantity)
        error_type = ""
        if out_dtype and out_dtype != expected_dtype:
            error_type = "OutDtype"
            messages.append(f"result dtype {out_dtype}, but the inputs imply {expected_dtype}")
            if status in ("pass", "inexact", "deviation"):
                status = "fail"
        return replace(row, status=status, deviation=deviation, error_type=error_type,
                       error_message="; ".join(messages), failures=self._failures(cell, verdict, got, reduced_over),
                       **self._located(cell, verdict, got.shape)).with_id()

    def _failures(self, cell: Cell, verdict: Judgement, got: np.ndarray, reduced_over: int | None) -> str:
        """The failing (not explained) elements of an element-wise result, by region and failure mode."""
        if reduced_over is not None or verdict.levels is None or verdict.ulp_errors is None or verdict.rounded is None:
            return ""
        failing = verdict.levels >= _FAIL_LEVEL
        case = self.cases[cell.case_index]  # regions in the case's own inputs, as the row's input_form says
        inputs = case.inputs(cell.dtype)
        if not failing.any() or inputs.x.shape != got.shape or inputs.y.shape != got.shape:
            return ""
        return failures(failing, got, verdict.rounded, verdict.ulp_errors, inputs.x.astype(np.float64),
                        inputs.y.astype(np.float64), case.input_form, cell.dtype, self._regions_of(cell, inputs))

    def _regions_of(self, cell: Cell, inputs: CaseInputs) -> tuple[np.ndarray, np.ndarray]:
        """Every element's region in the case's inputs, as the distinct regions and an index into them per
        element: the same for every implementation, reduction and quantity of the case in its dtype."""
        key = (cell.case_index, cell.dtype)
        if key not in self._regions:
            regions = input_regions(inputs.x, inputs.y, self.cases[cell.case_index].input_form, cell.dtype)
            labels, codes = np.unique(regions, return_inverse=True)
            self._regions[key] = labels, codes.astype(np.min_scalar_type(max(len(labels) - 1, 0)))
        return self._regions[key]

    def _compute_dtype(self, framework: str, cell: Cell) -> str | None:
        return self.implementation(cell.impl).compute_dtype

    def _prediction(self, convention: Convention, cell: Cell, quantity: str,
                    compute_dtype: str | None) -> Prediction | None:
        """What `convention` predicts for the cell: shared by every implementation and mode it covers that
        computes in the same dtype."""
        variant = self.reference_key(cell)
        key = (convention.id, variant.case_index, cell.dtype, variant.variant, cell.reduction, quantity,
               compute_dtype)
        if key not in self.predictions:
            inputs, form = self.inputs(cell)
            self.predictions[key] = predict(convention, inputs, form, cell.reduction, quantity, compute_dtype)
        return self.predictions[key]

    def _explain(self, cell: Cell, quantity: str, got: np.ndarray, verdict: Judgement,
                 exact: tuple[np.ndarray, np.ndarray, np.ndarray], fmt: FloatFormat,
                 reduced_over: int | None, compute_dtype: str | None) -> tuple[Judgement, str]:
        """Re-judge with the elements a documented convention accounts for marked `deviation`; returns the new
        verdict and the convention's id ("" when none accounts for anything). The row becomes `deviation` only if
        every other element passes (or is inexact); otherwise it keeps the status of the worst unexplained
        element, which it points at."""
        hi, lo, band = exact
        best, deviation = verdict, ""
        work = compute_dtype or cell.dtype  # the dtype the arithmetic happens in: where a mechanism acts
        for convention in (c for c in self.conventions if c.applies_to(cell.impl, quantity, work)):
            prediction = self._prediction(convention, cell, quantity, compute_dtype)
            if prediction is None or np.shape(prediction.hi) != got.shape:
                continue
            matches = _accounted_for(got, prediction, exact, _coarser(fmt, float_format(work)), reduced_over)
            if not matches.any():
                continue
            candidate = judge(got, hi, lo, band, fmt, reduced_over, explained=matches)
            if candidate.status == "deviation" or (best is verdict and candidate.levels is not None
                                                    and np.count_nonzero(candidate.levels == 2)):
                best, deviation = candidate, convention.id
                if candidate.status == "deviation":
                    break
        return best, deviation

    def _path_row(self, base: ConformanceRow, cell: Cell, quantity: str, compiled: Output, eager: Output,
                  ref: Reference) -> ConformanceRow:
        """The compiled result against the eager one, within the pass tolerance."""
        got = compiled.loss if quantity == "loss" else compiled.grad
        want = eager.loss if quantity == "loss" else eager.grad
        row = replace(base, check="path", quantity=quantity,
                      out_dtype=(compiled.out_dtype if quantity == "loss" else compiled.grad_dtype) or "")
        if got is None or want is None or got.shape != want.shape:
            return replace(row, status="fail", error_message=f"compiled shape {getattr(got, 'shape', None)} differs "
                                                             f"from eager {getattr(want, 'shape', None)}").with_id()
        reduced_over = ref.n if (quantity == "loss" and cell.reduction != "none") else None
        verdict = judge(got, want, np.zeros_like(want), np.zeros_like(want), float_format(cell.dtype), reduced_over)
        message = "compiled against eager" + (
            "" if verdict.status == "pass" else f": {verdict.n_bad} element(s) beyond the pass tolerance")
        status, error_type = verdict.status, ""
        eager_dtype = (eager.out_dtype if quantity == "loss" else eager.grad_dtype) or ""
        if row.out_dtype and eager_dtype and row.out_dtype != eager_dtype:  # mixed dtypes promote differently
            status, error_type = ("fail" if status in ("pass", "inexact") else status), "PathDtype"
            message += f"; the compiled result is {row.out_dtype}, eager's {eager_dtype}"
        return replace(row, status=status, error_type=error_type, error_message=message,
                       **self._located(cell, verdict, got.shape)).with_id()


def _derivative_dtype(inputs: CaseInputs, name: str) -> str:
    """The dtype a derivative should have: that of the argument it is taken with respect to (x for the others)."""
    by = {"grad_y": inputs.y, "grad_weight": inputs.weight, "grad_pos_weight": inputs.pos_weight}.get(name)
    return by.dtype.name if by is not None and by.dtype.kind == "f" else inputs.dtype


def _coarser(a: FloatFormat, b: FloatFormat) -> FloatFormat:
    return a if a.precision <= b.precision else b


def _accounted_for(got: np.ndarray, prediction: Prediction, exact: tuple[np.ndarray, np.ndarray, np.ndarray],
                   fmt: FloatFormat, reduced_over: int | None) -> np.ndarray:
    """The elements a convention accounts for: where its mechanism acts and moves the value beyond the pass
    tolerance (a flushed subnormal term moves no mean), and the output matches its prediction within that
    tolerance. Both are measured in ULPs of `fmt`, the coarser of the dtype under test and the one computed in (a
    float32 computation of float64 inputs is matched in float32's ULPs). A prediction that is NaN or infinite
    where the exact value is finite accounts for nothing (a clip that no longer protects)."""
    hi, lo, _band = exact
    zeros = np.zeros_like(prediction.hi)
    versus = judge(got, prediction.hi, prediction.lo, zeros, fmt, reduced_over)
    moved = judge(prediction.hi, hi, lo, zeros, fmt, reduced_over)
    assert versus.levels is not None and moved.levels is not None
    return ((versus.levels == 0) & prediction.acting & (moved.levels != 0)
            & ~(~np.isfinite(prediction.hi) & np.isfinite(hi)))
