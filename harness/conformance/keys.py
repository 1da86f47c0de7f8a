"""The rows an audit will write, known before it runs: one key per row, from the plan alone.

The pytest plugin collects one test per row without running anything; the audit's rows are then found again by
`row_id`. The keys follow the runner's rules: a cell's reference rows are its `Judge.quantities`, a batch cell has
loss and grad, a compiled cell also compares loss and grad with eager (`path`), and an identity whose two sides
both run has a `relation` row per quantity it holds for. A framework that is not installed has one `unavailable`
row per quantity (its loss, where it has none).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from cases import Case
from harness.conformance.plan import Cell, Scope, jobs_for
from harness.conformance.relations import relation_pairs
from harness.conformance.rows import Judge
from harness.store.schema import row_id
from implementations import Adapter

__all__ = ["RowKey", "planned_rows"]


class RowKey(NamedTuple):
    """What names one row of `conformance.parquet` (with its framework and family, which the id leaves out)."""

    framework: str
    impl: str
    case: str
    family: str
    dtype: str
    device: str
    reduction: str
    quantity: str
    check: str = "reference"
    mode: str = "eager"
    relation: str = ""

    @property
    def row_id(self) -> str:
        return row_id(self.impl, self.case, self.dtype, self.device, self.reduction, self.quantity, self.check,
                      self.mode, self.relation)

    def label(self) -> str:
        """Every part of the key but the implementation, in one readable id: `large-float32-cpu-mean-grad-
        reference-eager`, and the identity's name on a relation row."""
        parts = (self.case, self.dtype, self.device, self.reduction, self.quantity, self.check, self.mode)
        return "-".join(parts + ((self.relation,) if self.relation else ()))


def planned_rows(adapters: dict[str, type[Adapter]], cases: Sequence[Case], dtypes: Sequence[str],
                 devices: Sequence[str], scope: Scope | None = None) -> list[RowKey]:
    """Every row key an audit of these adapters, cases, dtypes and devices writes, in plan order, once each."""
    judge = Judge(cases, adapters)
    keys: dict[RowKey, None] = {}
    planned: set[Cell] = set()
    for name, adapter in adapters.items():
        cells = [cell for job in jobs_for(adapter, cases, dtypes, devices, scope or Scope.default())
                 for cell in job.cells()]
        if not adapter.is_available():
            keys.update(dict.fromkeys(_key(name, cases, cell, q) for cell in cells
                                      for q in judge.quantities(cell) or ("loss",)))
            continue
        cells = [cell for cell in cells if cell.dtype in adapter.dtypes]
        planned |= set(cells)
        keys.update(dict.fromkeys(key for cell in cells for key in _cell_rows(judge, name, cases, cell)))
    for name, adapter in adapters.items():  # a `backend` identity spans two frameworks: after every plan
        keys.update(dict.fromkeys(_relation_rows(judge, name, adapter, cases, dtypes, devices, planned)))
    return list(keys)


def _key(framework: str, cases: Sequence[Case], cell: Cell, quantity: str, **changes: str) -> RowKey:
    case = cases[cell.case_index]
    key = RowKey(framework, cell.impl, case.name, case.family, cell.dtype, cell.device, cell.reduction, quantity,
                 cell.check, cell.mode)
    return key._replace(**changes)


def _cell_rows(judge: Judge, framework: str, cases: Sequence[Case], cell: Cell) -> Iterator[RowKey]:
    """A computed cell's rows: its quantities against the reference (or alone vs in a batch), and for a compiled
    path loss and grad against eager."""
    for quantity in judge.quantities(cell):
        yield _key(framework, cases, cell, quantity)
    if cell.mode != "eager":
        for quantity in judge.path_quantities(cell):
            yield _key(framework, cases, cell, quantity, check="path")


def _relation_rows(judge: Judge, framework: str, adapter: type[Adapter], cases: Sequence[Case],
                   dtypes: Sequence[str], devices: Sequence[str], planned: set[Cell]) -> Iterator[RowKey]:
    """The identities' rows, where both sides run: on the row's implementation and base case."""
    for pair in relation_pairs(adapter, cases, dtypes, devices):
        if pair.base in planned and pair.partner in planned:
            cell = Cell(pair.impl, pair.case, pair.base.dtype, pair.base.device, pair.base.reduction)
            for quantity in judge.relation_quantities(pair):
                yield _key(framework, cases, cell, quantity, check="relation", relation=pair.relation)
