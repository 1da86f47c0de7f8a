"""Past one run: merging the run folders of shards, machines and framework versions into one; plans of jobs,
their executors (local processes, Ray) and emitters (GitHub matrix, Kubernetes Indexed Job, Slurm array)."""

from harness.scale.executors import run_plan
from harness.scale.merge import merge_runs
from harness.scale.plan import Plan, PlanError, make_plan, read_plan

__all__ = ["Plan", "PlanError", "make_plan", "merge_runs", "read_plan", "run_plan"]
