"""A plan: the jobs of an audit (or benchmark) split across shards, environments and devices, written as JSON
(`plan.schema.json`) for an executor to run or an emitter to turn into a CI matrix, a Kubernetes Job or a Slurm
array. A job is one `audit` (or `bench`) of one shard in one environment on one device, writing one run folder."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from cases import BadInput

__all__ = ["PLAN_SCHEMA", "PROJECT", "Environment", "Job", "Plan", "PlanError", "environment", "make_plan",
           "read_plan"]

PROJECT = Path(__file__).resolve().parents[2]
PLAN_SCHEMA = Path(__file__).with_name("schema") / "plan.schema.json"
PLAN_VERSION = 1
# the flags --resume accepts (the rest are the run's own): a retried job keeps its gate and its limits
_RESUMABLE = {"--fail-on": 1, "--expected": 1, "--timeout": 1, "--memory-limit": 1, "--jobs": 1, "--no-cache": 0}


def _resumable(arguments: list[str]) -> list[str]:
    """The arguments a `--resume` of the job passes on (with their values)."""
    kept, index = [], 0
    while index < len(arguments):
        flag = arguments[index].split("=")[0]
        takes = _RESUMABLE.get(flag)
        width = 1 if takes is None or "=" in arguments[index] else 1 + takes
        if takes is not None:
            kept += arguments[index:index + width]
        index += width if takes is not None else 1
    return kept


class PlanError(BadInput):
    """A plan that cannot be made or read; the message says which and how to fix it."""


@dataclass(frozen=True)
class Environment:
    """A prebuilt interpreter: a tox env's (`jax-0.9.2` → `.tox/jax-0.9.2/bin/python`), a path, or this one."""

    name: str
    python: str


@dataclass(frozen=True)
class Job:
    """One `command` of one shard (`i/n`) in one environment on one device, into the run folder `folder`
    (relative to where the plan runs)."""

    id: str
    command: str
    environment: str
    python: str
    device: str
    shard: str
    arguments: list[str]
    folder: str

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        """The job's command line, writing (or, `resume`, finishing) the run folder under `out`."""
        folder = str(out / self.folder)
        tail = ["--resume", folder, *_resumable(self.arguments)] if resume else [
            *self.arguments, "--devices", self.device, "--shard", self.shard, "--out", folder]
        return [self.python, "-m", "harness", self.command, *tail, "--quiet"]


@dataclass
class Plan:
    """What `plan` wrote: the command and its flags, the environments, devices and shard count, and the jobs."""

    command: str
    arguments: list[str]
    environments: list[Environment]
    devices: list[str]
    shards: int
    jobs: list[Job] = field(default_factory=list)
    created: str = ""
    version: int = PLAN_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n", encoding="utf-8")
        return path



def environment(spec: str) -> Environment:
    """An environment by tox env name (its interpreter must exist: `tox -e NAME --notest` builds it) or by the
    path of an interpreter."""
    tox = PROJECT / ".tox" / spec / "bin" / "python"
    path = Path(spec).expanduser()
    if "/" not in spec and tox.is_file():
        return Environment(spec, str(tox))
    if path.is_file() and os.access(path, os.X_OK):
        return Environment(path.parent.parent.name if path.parent.name == "bin" else spec, str(path.resolve()))
    raise PlanError(f"--envs {spec}: no tox env of that name has an interpreter (.tox/{spec}/bin/python: build it "
                    "with 'tox -e " + spec + " --notest') and it is not the path of an interpreter")


def make_plan(command: str, arguments: list[str], environments: list[Environment], devices: list[str],
              shards: int) -> Plan:
    """Every job: each environment × device × shard, in that order; folders `<env>/<device>/shard-<i>-of-<n>`."""
    if shards < 1:
        raise PlanError(f"--shards {shards}: give 1 or more")
    for what, names in (("--envs", [env.name for env in environments]), ("--devices", devices)):
        if len(set(names)) != len(names):
            raise PlanError(f"{what} {','.join(names)}: each once (two environments of one name would share their "
                            "jobs' folders; name an interpreter by its tox env, or by a path under a distinct folder)")
    if not environments:
        environments = [Environment("current", sys.executable)]
    plan = Plan(command, arguments, environments, devices, shards,
                created=datetime.now(UTC).isoformat(timespec="seconds"))
    for env in environments:
        for device in devices:
            for number in range(1, shards + 1):
                folder = f"{env.name}/{device}/shard-{number}-of-{shards}"
                plan.jobs.append(Job(f"{env.name}-{device}-{number}of{shards}", command, env.name, env.python,
                                     device, f"{number}/{shards}", list(arguments), folder))
    return plan


def read_plan(path: Path) -> Plan:
    """A plan file, checked against its schema."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(document, json.loads(PLAN_SCHEMA.read_text(encoding="utf-8")))
    except OSError as exc:
        raise PlanError(f"cannot read the plan {str(path)!r}: {exc.strerror}; make one with 'python -m harness "
                        "plan … --out PLAN.json'") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"the plan {str(path)!r} is not JSON ({exc.msg}, line {exc.lineno}); make it again") from None
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise PlanError(f"the plan {str(path)!r} is malformed at {where}: {exc.message}; make it again") from None
    jobs = [Job(**job) for job in document.pop("jobs")]
    if len({job.folder for job in jobs}) != len(jobs):
        raise PlanError(f"the plan {str(path)!r} gives two jobs one folder; make it again")
    environments = [Environment(**env) for env in document.pop("environments")]
    return Plan(environments=environments, jobs=jobs, **document)
