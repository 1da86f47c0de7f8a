"""What an audit worker tells the runner, one frozen record per message (after its greeting, `workers.Hello` or
`workers.LoadFailed`): a result per cell, then `Finished`."""

from __future__ import annotations

from dataclasses import dataclass

from harness.conformance.plan import Cell
from implementations import Output

__all__ = ["BatchComputed", "CellMessage", "Computed", "Finished", "NotSupported", "Raised"]


@dataclass(frozen=True, slots=True)
class Computed:
    """The implementation returned `output` for the cell."""

    cell: Cell
    output: Output


@dataclass(frozen=True, slots=True)
class BatchComputed:
    """The batch check's two results: each element computed alone (stacked), and all of them in one batch."""

    cell: Cell
    alone: Output
    batched: Output


@dataclass(frozen=True, slots=True)
class Raised:
    """The framework raised on the cell (its own answer, judged against the domain)."""

    cell: Cell
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class NotSupported:
    """The framework cannot do this cell (dtype, device or option)."""

    cell: Cell
    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    """Every job of the worker has been answered."""

    framework: str


CellMessage = Computed | BatchComputed | Raised | NotSupported
