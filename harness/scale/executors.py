"""Running a plan: each job a subprocess of the harness in the job's own interpreter, here K at a time (`local`)
or as Ray tasks (`ray`), then the jobs' run folders merged into one.

A job holds a lock on its run folder for as long as it or its audit lives (the lock's file descriptor is passed
to the audit, which dies with the job: PR_SET_PDEATHSIG, as do the audit's workers). A retried job (Ray retries a
task whose worker died) waits for that lock, so it never writes beside an orphan of the earlier try, then finishes
the folder the earlier try left (`audit --resume`) or starts it afresh if the earlier try left nothing."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
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

_RUNNING: set[subprocess.Popen[bytes]] = set()  # the jobs' audits running now (a Ctrl-C stops their groups)


@dataclass(frozen=True)
class JobResult:
    """How a job ended: its exit code (1 for a gate that failed on a finished run), whether its run folder is
    complete (what the merge takes), whether it finished an earlier try's folder, and its log."""

    id: str
    returncode: int
    folder: str
    complete: bool
    resumed: bool
    seconds: float
    log: str


def _complete(folder: Path) -> bool:
    """Whether a run folder finished (an audit's meta says so at its top, a benchmark's under `bench`)."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(meta.get("complete") or (meta.get("bench") or {}).get("complete"))


def run_job(job: Job, jobs_dir: Path, cwd: Path | None = None) -> JobResult:
    """Run one job (its folder under `jobs_dir`, from the folder `cwd`, where its relative paths are), resuming
    what an earlier try of it left."""
    folder = (jobs_dir / job.folder).resolve()
    if not folder.is_relative_to(jobs_dir.resolve()):
        raise PlanError(f"job {job.id}: its folder {job.folder!r} is outside the plan's jobs folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.parent / f"{folder.name}.log"
    began = time.perf_counter()
    with open(folder.parent / f".{folder.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for an orphan of an earlier try to end
        if _complete(folder):
            return JobResult(job.id, 0, str(folder), True, True, 0.0, str(log))
        resume = (folder / "meta.json").is_file()
        if folder.exists() and not resume:  # an earlier try that wrote nothing to resume (inside jobs/)
            shutil.rmtree(folder)
        path = os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH", "")) if p)
        with open(log, "a", encoding="utf-8") as output:
            try:
                process = subprocess.Popen(job.argv(jobs_dir, resume), cwd=cwd,
                                           env={**os.environ, "PYTHONPATH": path}, stdout=output,
                                           stderr=subprocess.STDOUT, pass_fds=(lock.fileno(),), process_group=0,
                                           preexec_fn=die_with_parent)
                _RUNNING.add(process)
                try:
                    code = process.wait()
                finally:
                    _RUNNING.discard(process)
            except OSError as exc:  # the environment's interpreter is gone
                output.write(f"could not start {job.python}: {exc}\n")
                code = 127
    return JobResult(job.id, code, str(folder), _complete(folder), resume, round(time.perf_counter() - began, 2),
                     str(log))


def _local(plan: Plan, jobs_dir: Path, jobs: int, **_: Any) -> list[JobResult]:
    """K jobs at once; a benchmark's one at a time (two timings on one machine disturb each other). Interrupted
    (Ctrl-C), it stops the running jobs' process groups: run it again into the same folder to resume them."""
    cwd = Path.cwd()
    width = 1 if plan.command == "bench" else max(1, jobs)
    with ThreadPoolExecutor(max_workers=width) as pool:
        futures = [pool.submit(run_job, job, jobs_dir, cwd) for job in plan.jobs]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            for process in list(_RUNNING):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            raise


def _ray(plan: Plan, jobs_dir: Path, jobs: int, address: str | None = None, env_resources: bool = False,
         **_: Any) -> list[JobResult]:
    """Each job a Ray task (retried where its worker dies), one CPU each, a GPU for a GPU job, and with
    `env_resources` one unit of the custom resource `bce-env-<environment>` (nodes that hold an environment
    declare it: `ray start --resources '{"bce-env-jax-0.9.2": 8}'`; a local cluster declares every one).
    `address`: an existing cluster (default: a local one with `jobs` CPUs). The cluster's nodes share this file
    system: the jobs' folders, their locks and the environments' interpreters are paths."""
    try:
        import ray
    except ImportError:
        raise PlanError("--executor ray needs Ray: pip install 'bce-harness[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            local = {f"bce-env-{env.name}": float(max(1, jobs)) for env in plan.environments} if env_resources else {}
            ray.init(address=address, num_cpus=None if address else max(1, jobs), include_dashboard=False,
                     log_to_driver=False, resources=None if address else local or None)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise PlanError(f"--executor ray could not start or reach a cluster ({exc}); check --address") from None
    try:
        task = ray.remote(max_retries=3, retry_exceptions=False)(run_job)
        cwd = Path.cwd()
        refs = [task.options(num_cpus=1, num_gpus=1 if job.device == "gpu" else 0,
                             resources={f"bce-env-{job.environment}": 1} if env_resources else None
                             ).remote(job, jobs_dir, cwd) for job in plan.jobs]
        return [_ray_result(ray, ref, job, jobs_dir) for ref, job in zip(refs, plan.jobs, strict=True)]
    finally:
        if started:
            ray.shutdown()


def _ray_result(ray: Any, ref: Any, job: Job, jobs_dir: Path) -> JobResult:
    """A task's result, or, where Ray gave up on it (its retries spent), a failed job with Ray's words."""
    try:
        return ray.get(ref)
    except Exception as exc:  # RayTaskError, WorkerCrashedError, …: this job's end, not the plan's
        folder = jobs_dir / job.folder
        return JobResult(job.id, -1, str(folder), _complete(folder), False, 0.0, f"Ray: {type(exc).__name__}")


EXECUTORS: dict[str, Callable[..., list[JobResult]]] = {"local": _local, "ray": _ray}


def run_plan(plan: Plan, out: Path, executor: str = "local", jobs: int = 2, address: str | None = None,
             run_id: str = "", env_resources: bool = False) -> tuple[Path, list[JobResult]]:
    """Run every job of the plan with `executor` (jobs' folders under `out/jobs/`), then merge the complete ones
    into the run folder `out` (again, into an `out` of an earlier run-plan: its finished jobs are kept, the rest
    resumed). A job whose run did not complete is reported and left out of the merge."""
    if executor not in EXECUTORS:
        raise PlanError(f"--executor {executor}: choose one of {', '.join(EXECUTORS)}")
    out = out.resolve()
    if out.exists() and not (out / "jobs.json").is_file() and any(p.name != "jobs" for p in out.iterdir()):
        raise PlanError(f"{str(out)!r} holds something other than a run-plan's; choose a new --out folder")
    results = EXECUTORS[executor](plan, out / "jobs", jobs, address=address, env_resources=env_resources)
    finished = [Path(r.folder) for r in results if r.complete]
    if not finished:
        raise PlanError(f"no job of the plan finished; their logs are under {str(out / 'jobs')!r}")
    merging = out / ".merging"
    shutil.rmtree(merging, ignore_errors=True)
    merge_runs(finished, merging, run_id, at_least=1)
    for item in out.iterdir():  # an earlier merge of this plan gives way
        if item.is_dir() and item.name not in ("jobs", ".merging"):
            shutil.rmtree(item)
        elif item.is_file():
            item.unlink()
    for item in merging.iterdir():
        item.rename(out / item.name)
    merging.rmdir()
    (out / "jobs.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n", encoding="utf-8")
    return out, results
