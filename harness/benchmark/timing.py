"""Timing primitives: pytest-benchmark's calibration, rounds and statistics, driven one block at a time.

pytest-benchmark times one function from start to end; the harness needs frameworks to take turns (A B C D A B
C D …), so it runs the library's own `BenchmarkFixture` once per block and pools the blocks' rounds. What the
library does not do is added here: the framework's sync inside the timed call, the first call timed on its own,
and the resident-set high-water mark of one fresh call. Nothing here imports a framework.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Block",
    "BlockOptions",
    "benchmark_document",
    "benchmark_entry",
    "calibrate",
    "first_call",
    "resident_peak",
    "summarize",
    "synced",
    "time_block",
]

Timer = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BlockOptions:
    """How one block of rounds is timed (pytest-benchmark's options, applied to a block).

    A round lasts at least `min_time` (1 ms: many calls of a tiny size are averaged in one round, as pyperf does,
    rather than thousands of rounds at the timer's resolution); a block has as many rounds as fill `max_time`,
    at least `min_rounds`. So a block costs about 0.1 s, or three calls of a slow configuration.
    """

    min_rounds: int = 3
    max_time: float = 0.1
    min_time: float = 1e-3
    calibration_precision: int = 10
    disable_gc: bool = True  # no collector pause inside a round

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Block:
    """One block: `iterations` calls per round, and each round's time per call in seconds."""

    iterations: int
    data: tuple[float, ...]


def synced(function: Callable[[], Any], sync: Callable[[Any], None]) -> Callable[[], None]:
    """The timed call: run `function`, then wait for what it queued (`sync`), so that asynchronous work is inside
    the measurement."""

    def call() -> None:
        sync(function())

    return call


def first_call(call: Callable[[], None], timer: Timer = time.perf_counter) -> float:
    """Seconds of one call, alone: the first call of a compiled path is its trace and compile."""
    start = timer()
    call()
    return timer() - start


class _Node:
    """What `BenchmarkFixture` reads of a pytest node."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodeid = name


class _QuietLogger:
    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass

    info = warning = debug


def _fixture(options: BlockOptions, timer: Timer, name: str, collected: list[Any]) -> Any:
    from pytest_benchmark.fixture import BenchmarkFixture
    from pytest_benchmark.utils import NameWrapper

    return BenchmarkFixture(
        _Node(name), disable_gc=options.disable_gc, timer=NameWrapper(timer), min_rounds=options.min_rounds,
        min_time=options.min_time, max_time=options.max_time, precision=None, confidence=None, warmup=False,
        warmup_iterations=0, calibration_precision=options.calibration_precision, add_stats=collected.append,
        logger=_QuietLogger(), warner=None, disabled=False, cprofile=False, cprofile_loops=None, cprofile_dump=None,
    )


def calibrate(call: Callable[[], None], options: BlockOptions, timer: Timer = time.perf_counter,
              name: str = "bce") -> Block:
    """pytest-benchmark's own calibration and rounds for one block: the iterations per round that the timer's
    precision needs, and as many rounds as fill `max_time` (at least `min_rounds`). The harness keeps these
    rounds as warm-up and times every later block with the same iterations and rounds."""
    collected: list[Any] = []
    _fixture(options, timer, name, collected)(call)
    metadata = collected[0]
    return Block(int(metadata.iterations), tuple(float(t) for t in metadata.stats.data))


def time_block(call: Callable[[], None], rounds: int, iterations: int, options: BlockOptions,
               timer: Timer = time.perf_counter, name: str = "bce") -> Block:
    """One block of `rounds` rounds of `iterations` calls each (pytest-benchmark's pedantic mode)."""
    collected: list[Any] = []
    _fixture(options, timer, name, collected).pedantic(call, rounds=rounds, iterations=iterations)
    metadata = collected[0]
    return Block(int(metadata.iterations), tuple(float(t) for t in metadata.stats.data))


def _proc_status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {key}")


def _trim_heap() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: pages freed earlier may hide part of a peak
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def resident_peak(call: Callable[[], None]) -> int:
    """Bytes the process's resident set rose above its size before `call`, at its highest during the call.

    Freed heap memory is first handed back to the kernel (glibc's malloc_trim), or a call would reuse pages an
    earlier call left resident and seem to need nothing; then the kernel's high-water mark (VmHWM) is reset
    through /proc/self/clear_refs, so the peak is this call's. tracemalloc would miss what torch and XLA allocate
    outside Python. Raises OSError where the kernel offers no reset (not Linux, or an old kernel).
    """
    gc.collect()
    _trim_heap()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    before = _proc_status("VmRSS")
    if _proc_status("VmHWM") > before + 16 * 2**20:  # slack: the framework's own threads may allocate meanwhile
        raise OSError("the kernel did not reset the resident-set high-water mark")
    call()
    return max(0, _proc_status("VmHWM") - before)


def summarize(data: Sequence[float]) -> dict[str, float]:
    """pytest-benchmark's statistics of per-call times: min, median, IQR and the rest."""
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for value in data:
        stats.update(value)
    return {field: float(value) if not isinstance(value, str) else value  # type: ignore[misc]
            for field, value in stats.as_dict().items()}


def benchmark_entry(name: str, group: str, params: dict[str, Any], extra_info: dict[str, Any],
                    options: BlockOptions, iterations: int, data: Sequence[float]) -> dict[str, Any]:
    """One benchmark in pytest-benchmark's JSON layout (as `Metadata.as_dict` writes it), with every round."""
    stats: dict[str, Any] = summarize(data)
    stats["data"] = list(data)
    stats["iterations"] = iterations
    param = "-".join(str(value) for value in params.values())
    return {
        "group": group, "name": f"{name}[{param}]", "fullname": f"bce-harness::{name}[{param}]",
        "params": params, "param": param, "extra_info": extra_info,
        "options": {**options.as_dict(), "timer": "perf_counter", "warmup": False}, "stats": stats,
    }


def benchmark_document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole pytest-benchmark JSON file: machine and commit info, then the benchmarks."""
    import pytest_benchmark
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.utils import get_commit_info

    return {
        "machine_info": pytest_benchmark_generate_machine_info(),
        "commit_info": get_commit_info("bce-harness"),
        "benchmarks": entries,
        "datetime": datetime.now(UTC).isoformat(),
        "version": pytest_benchmark.__version__,
    }
