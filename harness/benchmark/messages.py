"""The benchmark's requests and replies, one frozen record each: the runner asks one worker at a time and waits for
its reply (after the worker's greeting, `workers.Hello` or `workers.LoadFailed`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.benchmark.plan import BenchConfig, KernelConfig, ReadConfig

__all__ = ["CrossCheck", "Failed", "OwnTimed", "Prepare", "Prepared", "Release", "Released", "Reply", "Request", "Stop",
           "TimeBlock", "Timed"]

Fixed = tuple[int, int]  # (rounds per block, iterations per round) as the framework's first process calibrated


@dataclass(frozen=True, slots=True)
class Prepare:
    """Build the timed call of `config` (or of the read `config`), time its first call alone, calibrate it, or
    take `fixed` from the first process and warm up with it."""

    config: BenchConfig | ReadConfig | KernelConfig
    fixed: Fixed | None = None


@dataclass(frozen=True, slots=True)
class TimeBlock:
    """Time one block of rounds of a prepared configuration."""

    config: BenchConfig | ReadConfig | KernelConfig


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """Time a prepared configuration once with the framework's own timer, for about as long as a block."""

    config: BenchConfig


@dataclass(frozen=True, slots=True)
class Release:
    """Drop the prepared calls and inputs of the group just timed."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Exit."""


Request = Prepare | TimeBlock | CrossCheck | Release | Stop


@dataclass(frozen=True, slots=True)
class Prepared:
    """A configuration is ready: its first call's seconds, its block shape and (first process only) its peak, or
    for the speed-of-light kernel, its accuracy against the exact reference."""

    compile_s: float
    rounds_per_block: int
    iterations: int
    peak_memory_bytes: int | None = None
    peak_memory_note: str = ""
    accuracy: str = ""

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Timed:
    """One block: `iterations` calls per round, and each round's seconds per call."""

    iterations: int
    data: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class OwnTimed:
    """The framework's own timer (`timer` names it) on a prepared configuration: median seconds per call."""

    timer: str
    median_s: float


@dataclass(frozen=True, slots=True)
class Released:
    """The group's calls and inputs are gone."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The request could not be done: "Unsupported" (the framework cannot), an exception's type, or "WorkerLost"."""

    error_type: str
    message: str


Reply = Prepared | Timed | OwnTimed | Released | Failed
