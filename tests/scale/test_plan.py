"""Plans: the jobs of a split audit, checked against their schema; run by local processes and by Ray (a local
cluster) into one merged run equal to the unsharded audit; emitted for GitHub, Kubernetes and Slurm."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.scale.emit import EMITTERS
from harness.scale.plan import Environment, PlanError, make_plan, read_plan
from tests.conftest import assert_usage_error, run_main

SELECTION = ["--frameworks", "numpy,torch", "--families", "seed,labels", "--dtypes", "float32"]


def _plan(shards: int = 3, envs: list[Environment] | None = None, devices: list[str] | None = None):  # type: ignore[no-untyped-def]
    return make_plan("audit", SELECTION, envs or [], devices or ["cpu"], shards)


def test_a_plan_is_every_environment_device_and_shard_and_reads_back(tmp_path: Path) -> None:
    envs = [Environment("jax-0.9.2", "/e/1/bin/python"), Environment("jax-0.10.2", "/e/2/bin/python")]
    plan = _plan(2, envs, ["cpu", "gpu"])
    assert [job.id for job in plan.jobs] == ["jax-0.9.2-cpu-1of2", "jax-0.9.2-cpu-2of2", "jax-0.9.2-gpu-1of2",
                                             "jax-0.9.2-gpu-2of2", "jax-0.10.2-cpu-1of2", "jax-0.10.2-cpu-2of2",
                                             "jax-0.10.2-gpu-1of2", "jax-0.10.2-gpu-2of2"]
    job = plan.jobs[3]
    assert job.argv(Path("out")) == ["/e/1/bin/python", "-m", "harness", "audit", *SELECTION, "--devices", "gpu",
                                     "--shard", "2/2", "--out", "out/jax-0.9.2/gpu/shard-2-of-2", "--quiet"]
    assert job.argv(Path("out"), resume=True)[3:] == ["audit", "--resume", "out/jax-0.9.2/gpu/shard-2-of-2",
                                                      "--quiet"]
    again = read_plan(plan.write(tmp_path / "plan.json"))
    assert again == plan and make_plan("audit", [], [], ["cpu"], 1).environments[0].python == sys.executable


def test_a_malformed_plan_is_one_line_naming_where(tmp_path: Path) -> None:
    file = _plan().write(tmp_path / "plan.json")
    document = json.loads(file.read_text())
    document["jobs"][1]["shard"] = "two of three"
    file.write_text(json.dumps(document))
    with pytest.raises(PlanError, match="malformed at jobs/1/shard"):
        read_plan(file)
    file.write_text("{")
    with pytest.raises(PlanError, match="is not JSON"):
        read_plan(file)


def test_the_github_matrix_has_one_entry_per_job() -> None:
    matrix = json.loads(EMITTERS["github-matrix"](_plan(4)))
    assert [entry["shard"] for entry in matrix["include"]] == ["1/4", "2/4", "3/4", "4/4"]
    assert matrix["include"][2]["command"].endswith("--shard 3/4 --out runs/current/cpu/shard-3-of-4 --quiet")


def test_the_array_engines_get_n_tasks_indexed_from_zero() -> None:
    job = EMITTERS["k8s-indexed-job"](_plan(4))
    assert "completionMode: Indexed" in job and "completions: 4" in job and "parallelism: 4" in job
    assert "--shard-from-env JOB_COMPLETION_INDEX/4" in job
    slurm = EMITTERS["slurm-array"](_plan(5))
    assert re.search(r"^#SBATCH --array=0-4$", slurm, re.M) and "--shard-from-env SLURM_ARRAY_TASK_ID/5" in slurm
    two = _plan(2, [Environment("a", "/a"), Environment("b", "/b")])
    with pytest.raises(PlanError, match="one environment on one device"):
        EMITTERS["slurm-array"](two)


@pytest.mark.parametrize(("value", "fragment"), [
    (None, "$BCE_TEST_INDEX is not set"), ("4", "from 0 to 3"), ("x", "'x'"), ("²", "'²'"),
])
def test_a_bad_task_index_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str | None, fragment: str) -> None:
    if value is not None:
        monkeypatch.setenv("BCE_TEST_INDEX", value)
    assert_usage_error(run_main("audit", "--shard-from-env", "BCE_TEST_INDEX/4", "--frameworks", "numpy"), fragment)


def test_plan_refuses_what_it_sets_itself_and_checks_the_commands_flags() -> None:
    assert_usage_error(run_main("plan", "audit", "--shards", "2", "--out", "p.json", "--shard", "1/2"),
                       "a plan sets each job's shard")
    assert_usage_error(run_main("plan", "audit", "--shards", "2", "--out", "p.json", "--frmeworks", "numpy"),
                       "unrecognized arguments: --frmeworks")
    assert_usage_error(run_main("plan", "audit", "--shards", "2", "--envs", "no-such-env", "--out", "p.json"),
                       "no tox env of that name")


def _statuses(folder: Path) -> pd.Series:
    table = pd.read_parquet(folder / "conformance.parquet")
    return table.set_index("row_id")["status"].sort_index()


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory: pytest.TempPathFactory) -> pd.Series:
    out = tmp_path_factory.mktemp("whole") / "run"
    done = run_main("audit", *SELECTION, "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    return _statuses(out)


@pytest.mark.slow  # two audits in processes of their own
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_plan_of_two_shards_merges_into_the_unsharded_audit(tmp_path: Path, unsharded: pd.Series,
                                                              executor: str) -> None:
    if executor == "ray":
        pytest.importorskip("ray", reason="pip install 'bce-harness[ray]'")
    plan = _plan(2).write(tmp_path / "plan.json")
    placement = ["--env-resources"] if executor == "ray" else []  # each job on a node that declares its environment
    done = run_main("run-plan", str(plan), "--executor", executor, "--jobs", "2", *placement, "--out",
                    str(tmp_path / "all"))
    assert done.returncode == 0, done.stderr
    merged = _statuses(tmp_path / "all")
    assert merged.index.is_unique and merged.equals(unsharded)
    meta = json.loads((tmp_path / "all" / "meta.json").read_text())
    assert (meta["kind"], meta["shards"], meta["complete"]) == ("merged", "complete", True)
    assert sorted(p.name for p in (tmp_path / "all" / "jobs" / "current" / "cpu").iterdir()
                  if p.is_dir()) == ["shard-1-of-2", "shard-2-of-2"]


def test_a_task_index_names_its_shard_counting_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli import _parser, _shard

    for index, shard in (("0", "1/4"), ("3", "4/4")):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", index)
        assert _shard(_parser().parse_args(["audit", "--shard-from-env", "SLURM_ARRAY_TASK_ID/4"])) == shard
