"""The audit pipeline: the plan of the matrix, the messages of its workers, the worker itself, the rows a result
becomes, the profile of a run, and the runner that drives them through the worker pool into a run folder.

Its names load on first use: a worker process imports `harness.conformance.worker`, not the runner's pandas."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.conformance.plan import BATCH_SIZE, Cell, Job, Scope, jobs_for, shard_cases
    from harness.conformance.rows import QUANTITIES, Judge
    from harness.conformance.runner import Progress, Settings, run_conformance, run_into

_WHERE = {
    **dict.fromkeys(("BATCH_SIZE", "Cell", "Job", "Scope", "jobs_for", "shard_cases"), "harness.conformance.plan"),
    **dict.fromkeys(("QUANTITIES", "Judge"), "harness.conformance.rows"),
    **dict.fromkeys(("Progress", "Settings", "run_conformance", "run_into"), "harness.conformance.runner"),
}

__all__ = ["BATCH_SIZE", "QUANTITIES", "Cell", "Job", "Judge", "Progress", "Scope", "Settings", "jobs_for",
           "run_conformance", "run_into", "shard_cases"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness.conformance' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
