"""The audit of one adapter in this process, without workers: for a user's own loss checked inside their tests
(the fixture `bce_check`), where the function is an object of this process and its framework is already
imported and configured by the user. The plan, the references, the worker's own loop and the judge are the
audit's; only the process differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cases import Case
from harness.conformance.plan import Scope, jobs_for
from harness.conformance.rows import Judge
from harness.conformance.runner import exact_derivatives, exact_references, message_rows
from harness.conformance.worker import run_jobs
from harness.store.schema import ConformanceRow
from implementations import Adapter

__all__ = ["run_here"]


class _Collected:
    """Stands in for a worker's channel: keeps what `run_jobs` sends."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, message: Any) -> None:
        self.messages.append(message)


def run_here(adapter: Adapter, cases: Sequence[Case], dtypes: Sequence[str], devices: Sequence[str],
             scope: Scope | None = None, use_cache: bool = True, run_id: str = "",
             quantities: Sequence[str] | None = None) -> list[ConformanceRow]:
    """Every row of `adapter`'s matrix on `cases` (of `quantities` only, when given: loss, grad and the further
    derivatives), computed and judged here (the adapter is ready to compute: loaded or attached). Eager only:
    the compiled paths are the workers'."""
    cases = list(cases)
    kind = type(adapter)
    wanted = set(quantities) if quantities is not None else None
    jobs = [replace(job, derivatives=tuple(d for d in job.derivatives if wanted is None or d in wanted))
            for job in jobs_for(kind, cases, dtypes, devices, scope or Scope.default())
            if job.mode == "eager" and job.dtype in kind.dtypes]
    judge = Judge(cases, {kind.framework: kind}, (), run_id=run_id)
    judge.versions[kind.framework] = adapter.runtime_version()
    for _ in exact_references(judge, jobs, use_cache):
        pass
    exact_derivatives(judge, sorted({(job.case_index, job.dtype) for job in jobs if job.derivatives}), use_cache)
    channel = _Collected()
    with np.errstate(all="ignore"):  # the user's function's overflow is the data, not a warning in their tests
        run_jobs(adapter, cases, jobs, channel)  # type: ignore[arg-type]
    rows = [row for message in channel.messages for row in message_rows(judge, kind.framework, message)]
    return [row for row in rows if wanted is None or row.quantity in wanted]
