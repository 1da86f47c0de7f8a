"""A plan for engines that cannot run here, as text on standard output: a GitHub Actions job matrix, a
Kubernetes Indexed Job, a Slurm job array. The array engines hand each task a 0-based index in an environment
variable; the job reads it with `--shard-from-env VAR/N` (shard VAR + 1 of N)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

from harness.scale.plan import PROJECT, Plan, PlanError


def portable(python: str) -> str:
    """An interpreter as another machine with this checkout names it: relative to the checkout where it is in it
    (`.tox/audit/bin/python`), else as given. (A container's `python` is the emitted file's to adapt.)"""
    path = Path(python)
    return str(path.relative_to(PROJECT)) if path.is_relative_to(PROJECT) else python

__all__ = ["EMITTERS"]


def github_matrix(plan: Plan) -> str:
    """The JSON for `strategy.matrix: ${{ fromJSON(...) }}`: one `include` entry per job, with its command line."""
    include = [{"id": job.id, "environment": job.environment, "device": job.device, "shard": job.shard,
                "folder": f"runs/{job.folder}",
                "command": shlex.join([portable(job.python), *job.argv(Path("runs"))[1:]])} for job in plan.jobs]
    return json.dumps({"include": include})


def _one_array(plan: Plan, engine: str) -> tuple[str, str]:
    """The command line of an array task (one environment and device: an array has one image and one queue)."""
    if len(plan.environments) != 1 or len(plan.devices) != 1:
        raise PlanError(f"--emit {engine}: an array runs one environment on one device; make one plan per "
                        "environment and device")
    device = plan.devices[0]
    arguments = shlex.join([portable(plan.environments[0].python), "-m", "harness", plan.command, *plan.arguments,
                            "--devices", device])
    return arguments, device


def k8s_indexed_job(plan: Plan) -> str:
    """An Indexed Job of N pods: pod i runs shard i + 1 of N (JOB_COMPLETION_INDEX) into its own folder of the
    volume mounted at /runs; the image holds the checkout and the environment."""
    command, device = _one_array(plan, "k8s-indexed-job")
    n = plan.shards
    script = (f"{command} --shard-from-env JOB_COMPLETION_INDEX/{n} "
              f"--out /runs/{plan.command}-shard-$(( JOB_COMPLETION_INDEX + 1 ))-of-{n} --quiet")
    gpu = "\n            limits: {nvidia.com/gpu: 1}" if device == "gpu" else ""
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: bce-harness-{plan.command}
spec:
  completionMode: Indexed
  completions: {n}
  parallelism: {n}
  backoffLimitPerIndex: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: harness
          image: bce-harness:latest
          workingDir: /work
          command: ["bash", "-c", {json.dumps(script)}]
          resources:
            requests: {{cpu: "2"}}{gpu}
          volumeMounts: [{{name: runs, mountPath: /runs}}]
      volumes: [{{name: runs, persistentVolumeClaim: {{claimName: bce-harness-runs}}}}]
"""


def slurm_array(plan: Plan) -> str:
    """An sbatch script of an array of N tasks: task i runs shard i + 1 of N (SLURM_ARRAY_TASK_ID)."""
    command, device = _one_array(plan, "slurm-array")
    n = plan.shards
    gpu = "#SBATCH --gres=gpu:1\n" if device == "gpu" else ""
    return f"""#!/bin/bash
#SBATCH --job-name=bce-harness-{plan.command}
#SBATCH --array=0-{n - 1}
#SBATCH --cpus-per-task=2
{gpu}#SBATCH --output=slurm-%A_%a.log
set -euo pipefail
{command} --shard-from-env SLURM_ARRAY_TASK_ID/{n} \\
    --out "runs/{plan.command}-shard-$(( SLURM_ARRAY_TASK_ID + 1 ))-of-{n}" --quiet
# when every task is done: python -m harness merge runs/{plan.command}-shard-*-of-{n} --out runs/merged
"""


EMITTERS: dict[str, Callable[[Plan], str]] = {"github-matrix": github_matrix, "k8s-indexed-job": k8s_indexed_job,
                                              "slurm-array": slurm_array}
