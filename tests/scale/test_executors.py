"""A job as an executor runs it, with a stand-in interpreter that records its command line and writes the run's
meta.json: a fresh run, the resume of an earlier try's folder (keeping the gate), a finished folder left alone,
a gate that failed on a finished run, and the folders and interpreters a job must not touch or cannot start."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from harness.scale.emit import EMITTERS
from harness.scale.executors import run_job
from harness.scale.plan import Environment, PlanError, make_plan, read_plan

FAKE = """#!/bin/bash
echo "$@" >> "$(dirname "$0")/calls.txt"
prev=""; for a in "$@"; do if [ "$prev" = "--out" ] || [ "$prev" = "--resume" ]; then f=$a; fi; prev=$a; done
mkdir -p "$f"; echo '{"complete": true}' > "$f/meta.json"
exit ${FAKE_EXIT:-0}
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(FAKE)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return python


def _job(python: Path, arguments: list[str] | None = None):  # type: ignore[no-untyped-def]
    plan = make_plan("audit", arguments or ["--frameworks", "numpy", "--fail-on", "fail"],
                     [Environment("env", str(python))], ["cpu"], 2)
    return plan.jobs[1]


def _calls(python: Path) -> list[str]:
    file = python.parent / "calls.txt"
    return file.read_text().splitlines() if file.is_file() else []


def test_a_fresh_job_runs_its_shard_into_its_folder(fake: Path, tmp_path: Path) -> None:
    result = run_job(_job(fake), tmp_path / "jobs")
    assert (result.returncode, result.complete, result.resumed) == (0, True, False)
    [call] = _calls(fake)
    assert call.endswith("--devices cpu --shard 2/2 --out " + str(tmp_path / "jobs" / "env/cpu/shard-2-of-2")
                         + " --quiet") and "--fail-on fail" in call


def test_an_earlier_trys_folder_is_resumed_with_the_gate_and_a_finished_one_left_alone(fake: Path,
                                                                                        tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "env/cpu/shard-2-of-2"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"complete": false}')
    result = run_job(_job(fake), tmp_path / "jobs")
    assert (result.complete, result.resumed) == (True, True)
    assert _calls(fake) == [f"-m harness audit --resume {folder} --fail-on fail --quiet"]
    again = run_job(_job(fake), tmp_path / "jobs")  # complete: nothing runs
    assert (again.returncode, again.complete, len(_calls(fake))) == (0, True, 1)


def test_a_gate_that_failed_on_a_finished_run_is_a_complete_run(fake: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXIT", "1")
    result = run_job(_job(fake), tmp_path / "jobs")
    assert (result.returncode, result.complete) == (1, True)  # merged, and run-plan exits 1


def test_a_job_never_leaves_its_jobs_folder_and_a_missing_interpreter_is_its_failure(fake: Path,
                                                                                     tmp_path: Path) -> None:
    from dataclasses import replace

    with pytest.raises(PlanError, match="outside the plan's jobs folder"):
        run_job(replace(_job(fake), folder="../../elsewhere"), tmp_path / "jobs")
    gone = run_job(replace(_job(fake), python=str(tmp_path / "nothing")), tmp_path / "jobs")
    assert (gone.returncode, gone.complete) == (127, False)
    assert "could not start" in Path(gone.log).read_text()


def test_duplicate_environments_or_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="each once"):
        make_plan("audit", [], [Environment("a", "/a"), Environment("a", "/b")], ["cpu"], 1)
    with pytest.raises(PlanError, match="each once"):
        make_plan("audit", [], [], ["cpu", "cpu"], 1)
    file = make_plan("audit", [], [], ["cpu"], 2).write(tmp_path / "plan.json")
    document = json.loads(file.read_text())
    for folder, words in (("/etc", "malformed at jobs/0/folder"), ("a/../../b", "malformed at jobs/0/folder"),
                          (document["jobs"][1]["folder"], "two jobs one folder")):
        document["jobs"][0]["folder"] = folder
        file.write_text(json.dumps(document))
        with pytest.raises(PlanError, match=words):
            read_plan(file)


def test_the_kubernetes_job_is_yaml_with_n_indexed_completions() -> None:
    job = yaml.safe_load(EMITTERS["k8s-indexed-job"](make_plan("audit", [], [], ["gpu"], 6)))
    spec = job["spec"]
    assert (job["kind"], spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Job", "Indexed", 6, 6)
    container = spec["template"]["spec"]["containers"][0]
    assert "--shard-from-env JOB_COMPLETION_INDEX/6" in container["command"][2]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
