"""Running a plan: each job a subprocess of the harness in the job's own interpreter, here K at a time (`local`)
or as Ray tasks (`ray`), then the jobs' run folders merged into one.

A job holds a lock on its run folder for as long as it or its audit lives (the lock's file descriptor is passed
to the audit, which dies with the job: PR_SET_PDEATHSIG, as do the audit's workers). A retried job (Ray retries a
task whose worker died) waits for that lock, so it never writes beside an orphan of the earlier try, then finishes
the folder the earlier try left (`audit --resume`) or starts it afresh if the earlier try left nothing."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.scale.merge import merge_runs
from harness.scale.plan import PROJECT, Job, Plan, PlanError
from harness.workers.process import die_with_parent

__all__ = ["EXECUTORS", "JobResult", "run_job", "run_plan"]


@dataclass(frozen=True)
class JobResult:
    """How a job ended: its exit code, whether it finished an earlier try's folder, and its log."""

    id: str
    returncode: int
    folder: str
    resumed: bool
    seconds: float
    log: str


def _start_in_own_group() -> None:
    os.setpgid(0, 0)  # the audit and its workers: one process group, killed together
    die_with_parent()


def run_job(job: Job, jobs_dir: Path) -> JobResult:
    """Run one job (its folder under `jobs_dir`), resuming what an earlier try of it left."""
    folder = jobs_dir / job.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.parent / f"{folder.name}.log"
    began = time.perf_counter()
    with open(folder.parent / f".{folder.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for an orphan of an earlier try to end
        meta = folder / "meta.json"
        if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("complete"):
            return JobResult(job.id, 0, str(folder), True, 0.0, str(log))
        resume = meta.is_file()
        if folder.exists() and not resume:  # an earlier try that wrote nothing to resume
            shutil.rmtree(folder)
        environment = {**os.environ, "PYTHONPATH": str(PROJECT)}
        with open(log, "a", encoding="utf-8") as output:
            done = subprocess.run(job.argv(jobs_dir, resume), cwd=PROJECT, env=environment, stdout=output,
                                  stderr=subprocess.STDOUT, pass_fds=(lock.fileno(),),
                                  preexec_fn=_start_in_own_group, check=False)
    return JobResult(job.id, done.returncode, str(folder), resume, round(time.perf_counter() - began, 2), str(log))


def _local(plan: Plan, jobs_dir: Path, jobs: int, **_: Any) -> list[JobResult]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda job: run_job(job, jobs_dir), plan.jobs))


def _ray(plan: Plan, jobs_dir: Path, jobs: int, address: str | None = None, **_: Any) -> list[JobResult]:
    """Each job a Ray task (retried where its worker dies), one CPU each, a GPU for a GPU job; `address`: an
    existing cluster (default: a local one with `jobs` CPUs)."""
    try:
        import ray
    except ImportError:
        raise PlanError("--executor ray needs Ray: pip install 'bce-harness[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else max(1, jobs), include_dashboard=False,
                 log_to_driver=False)
    try:
        task = ray.remote(max_retries=3, retry_exceptions=False)(run_job)
        refs = [task.options(num_cpus=1, num_gpus=1 if job.device == "gpu" else 0).remote(job, jobs_dir)
                for job in plan.jobs]
        return list(ray.get(refs))
    finally:
        if started:
            ray.shutdown()


EXECUTORS: dict[str, Callable[..., list[JobResult]]] = {"local": _local, "ray": _ray}


def run_plan(plan: Plan, out: Path, executor: str = "local", jobs: int = 2, address: str | None = None,
             run_id: str = "") -> tuple[Path, list[JobResult]]:
    """Run every job of the plan with `executor` (jobs' folders under `out/jobs/`), then merge those that finished
    into the run folder `out`. A job that failed is reported, and its folder is left out of the merge."""
    if executor not in EXECUTORS:
        raise PlanError(f"--executor {executor}: choose one of {', '.join(EXECUTORS)}")
    if out.exists() and any(p.name != "jobs" for p in out.iterdir()):
        raise PlanError(f"{str(out)!r} already holds a run; choose a new --out folder (its jobs/ are resumed)")
    jobs_dir = out / "jobs"
    results = EXECUTORS[executor](plan, jobs_dir, jobs, address=address)
    finished = [Path(r.folder) for r in results if r.returncode == 0]
    if not finished:
        raise PlanError(f"no job of the plan finished; their logs are under {str(jobs_dir)!r}")
    merging = out / ".merging"
    shutil.rmtree(merging, ignore_errors=True)
    if len(finished) == 1:
        shutil.copytree(finished[0], merging)
    else:
        merge_runs(finished, merging, run_id)
    for item in merging.iterdir():
        item.rename(out / item.name)
    merging.rmdir()
    (out / "jobs.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n", encoding="utf-8")
    return out, results
