"""What an audit worker and the runner say to each other, one frozen record per message.

The runner hands out work in `Assign`s; the worker (after its greeting, `workers.Hello` or `workers.LoadFailed`)
answers each cell of it with one message that carries the seconds the cell took, then says `Ready` for more,
with what it has used so far; `Stop` ends it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cases import Case
from harness.conformance.plan import Cell, Job
from implementations import Output

__all__ = ["Assign", "BatchComputed", "CellMessage", "Computed", "NotSupported", "Raised", "Ready", "Stop"]


@dataclass(frozen=True, slots=True)
class Assign:
    """The runner's order: run these jobs, in this order. With `cases`, the jobs index these (inputs made up as
    the run goes, such as the fuzzer's) instead of the cases the worker started with."""

    jobs: tuple[Job, ...]
    cases: tuple[Case, ...] = ()


@dataclass(frozen=True, slots=True)
class Stop:
    """The runner has no more work for this worker: it exits."""


@dataclass(frozen=True, slots=True)
class Computed:
    """The implementation returned `output` for the cell."""

    cell: Cell
    output: Output
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchComputed:
    """The batch check's two results: each element computed alone (stacked), and all of them in one batch."""

    cell: Cell
    alone: Output
    batched: Output
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Raised:
    """The framework raised on the cell (its own answer, judged against the domain)."""

    cell: Cell
    error_type: str
    message: str
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NotSupported:
    """The framework cannot do this cell (dtype, device or option)."""

    cell: Cell
    message: str
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Ready:
    """Every job assigned so far has been answered; the worker's CPU seconds, peak resident memory and what its
    framework has compiled, so far."""

    framework: str
    cpu_seconds: float = 0.0
    peak_bytes: int = 0
    compiles: dict[str, float] = field(default_factory=dict)  # the adapter's compile_stats()


CellMessage = Computed | BatchComputed | Raised | NotSupported
