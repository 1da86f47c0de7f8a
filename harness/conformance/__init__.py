"""The audit pipeline: the plan of the matrix, the messages of its workers, the worker itself, the rows a result
becomes, and the runner that drives them through the worker pool into a run folder."""

from harness.conformance.plan import BATCH_SIZE, Cell, Job, Scope, jobs_for, shard_cases
from harness.conformance.rows import QUANTITIES, Judge
from harness.conformance.runner import Progress, Settings, run_conformance, run_into

__all__ = ["BATCH_SIZE", "QUANTITIES", "Cell", "Job", "Judge", "Progress", "Scope", "Settings", "jobs_for",
           "run_conformance", "run_into", "shard_cases"]
