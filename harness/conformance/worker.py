"""The audit worker: one framework, imported here and nowhere else, running the jobs the runner assigns and telling
it each result as it is produced."""

from __future__ import annotations

import dataclasses
import resource
import time
from multiprocessing.connection import Connection

import numpy as np

from cases import Case
from harness.conformance.messages import Assign, BatchComputed, CellMessage, Computed, NotSupported, Raised, Ready
from harness.conformance.plan import BATCH_SIZE, DERIVATIVE_REDUCTIONS, Cell, Job
from harness.workers.messages import load_framework
from harness.workers.process import die_with_parent, one_line, redirect_output
from implementations import Adapter, Implementation, Output, Unsupported

__all__ = ["run_jobs", "usage", "worker_main"]

Alone = dict[tuple[str | bytes, ...], Output]  # (impl, device, x's dtype and bytes, y's): an element's answer alone


def worker_main(framework: str, threads: int, cases: list[Case], log_path: str | None, compile_cache: str | None,
                channel: Connection) -> None:
    """Load the framework, then run each `Assign` as it comes, answering every cell and then `Ready`, until the
    runner says `Stop` (or goes away)."""
    die_with_parent()
    redirect_output(log_path)
    adapter, hello = load_framework(framework, threads, compile_cache)
    channel.send(hello)
    if adapter is None:
        return
    while True:
        try:
            order = channel.recv()
        except (EOFError, OSError):
            return
        if not isinstance(order, Assign):
            return
        run_jobs(adapter, list(order.cases) or cases, order.jobs, channel)
        channel.send(Ready(framework, *usage(), adapter.compile_stats()))


def run_jobs(adapter: Adapter, cases: list[Case], jobs: tuple[Job, ...] | list[Job], channel: Connection) -> None:
    """Every cell of the jobs, each answer sent as soon as it is known."""
    alone: Alone = {}  # the batch checks' elements computed alone, shared by the cases of this piece
    for job in jobs:
        impl = adapter.implementation(job.impl)
        arrays = cases[job.case_index].inputs(job.dtype).arrays()
        for cell in job.cells():
            began = time.perf_counter()
            wanted = job.derivatives if cell.reduction in DERIVATIVE_REDUCTIONS else ()
            answer = _answer(adapter, impl, arrays, cell, wanted, alone)
            channel.send(dataclasses.replace(answer, seconds=time.perf_counter() - began))


def usage() -> tuple[float, int]:
    """This process's CPU seconds (user and system, with those of the processes it ran and waited for, such as a
    framework's compiler) and its peak resident bytes so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, own.ru_maxrss * 1024


def _answer(adapter: Adapter, impl: Implementation, arrays: dict[str, np.ndarray], cell: Cell,
            derivatives: tuple[str, ...], alone: Alone) -> CellMessage:
    """What the framework did with one cell (and the further derivatives asked for with it); `alone`: the
    elements the piece's batch checks have computed alone so far."""
    try:
        if cell.check == "batch":
            return BatchComputed(cell, *_alone_and_batched(adapter, impl, arrays, cell.device, alone))
        output = adapter.compute(impl, arrays, cell.reduction, cell.device, cell.mode,  # type: ignore[arg-type]
                                 derivatives)
        return Computed(cell, output)
    except Unsupported as exc:
        return NotSupported(cell, str(exc))
    except Exception as exc:  # the framework's own answer to this input
        return Raised(cell, type(exc).__name__, one_line(exc))


def _alone_and_batched(adapter: Adapter, impl: Implementation, arrays: dict[str, np.ndarray], device: str,
                       memo: Alone) -> tuple[Output, Output]:
    """Each element computed alone (a 1-element array), and all of them tiled into one batch of BATCH_SIZE.
    An element whose x and y have the same bits as one already computed alone (in this case or another of the
    piece) takes that answer: the same call on the same bytes. (Whether repeating a call gives the same bits is
    not this check's question: it asks whether the batch changes an element's.)"""
    x, y = arrays["x"].ravel(), arrays["y"].ravel()
    alone = []
    for i in range(x.size):
        key = (impl.impl, device, x.dtype.name, x[i].tobytes(), y.dtype.name, y[i].tobytes())
        if key not in memo:
            memo[key] = adapter.compute(impl, {"x": x[i:i + 1], "y": y[i:i + 1]}, "none", device)
        alone.append(memo[key])
    tiled = np.resize(np.arange(x.size), BATCH_SIZE)
    batched = adapter.compute(impl, {"x": x[tiled], "y": y[tiled]}, "none", device)
    stacked = Output(
        loss=np.concatenate([out.loss for out in alone]),
        grad=None if alone[0].grad is None else np.concatenate([out.grad for out in alone if out.grad is not None]),
        out_dtype=alone[0].out_dtype, grad_dtype=alone[0].grad_dtype, api=alone[0].api,
        grad_error=alone[0].grad_error,
    )
    return stacked, batched
