"""The GitHub workflows: valid YAML, CI runs .ci/run, and every `python -m harness` command they name exists with
the flags they give it (checked against the command's own --help; nothing is run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_main

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _steps(path: Path) -> list[str]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and "jobs" in document, path
    return [str(step["run"]) for job in document["jobs"].values() for step in job["steps"] if "run" in step]


def test_ci_runs_the_readme_test_command_through_ci_run() -> None:
    assert ROOT / ".github" / "workflows" / "ci.yml" in WORKFLOWS
    assert any("bash .ci/run" in step for step in _steps(ROOT / ".github" / "workflows" / "ci.yml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_harness_command_of_a_workflow_exists_with_its_flags(path: Path) -> None:
    commands = [re.sub(r"\$\{\{[^}]*\}\}", "X", line.split("python -m harness", 1)[1])
                for step in _steps(path) for line in [" ".join(step.split())] if "python -m harness" in line]
    for command in commands:
        words = shlex.split(command)
        help_text = run_main(words[0], "--help")
        assert help_text.returncode == 0, (path.name, words[0], help_text.stderr)
        known = help_text.stdout + (run_main(words[1], "--help").stdout if words[0] == "plan" else "")
        for flag in (w for w in words[1:] if w.startswith("--")):  # a plan passes its command's flags on
            assert flag in known, f"{path.name}: python -m harness {words[0]} has no {flag}"
