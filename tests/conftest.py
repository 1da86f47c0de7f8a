"""Shared fixtures: a private reference cache per test session, helpers to run the CLI, and the tiers.

Tests mirror the packages (`tests/<room>/test_<module>.py`); `tests/e2e/` holds the end-to-end runs of
`python -m harness` in subprocesses, and everything in it is marked `slow`, as is any test marked so for
starting framework workers of a whole audit. `pytest -m "not slow"` is the tier a change is developed against.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW_FOLDERS = ("e2e",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under a slow folder is `slow`."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if not path.is_relative_to(ROOT / "tests"):  # items of a plugin (`pytest --bce` in this checkout)
            continue
        if path.relative_to(ROOT / "tests").parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["BCE_HARNESS_CACHE"] = str(tmp_path_factory.mktemp("reference-cache"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            extra_path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m harness ARGS` as a user would, from the checkout (`extra_path`: more import paths first)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (extra_path, str(ROOT)) if p))
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout, check=False)


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` in this process: fast, for commands that start no framework worker here."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(["python", "-m", "harness", *args], code, out.getvalue(), err.getvalue())


def assert_usage_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Bad input to the tool: exit code 2 and one line on stderr that says `fragment`, never a traceback."""
    assert done.returncode == 2, (done.stdout[-500:], done.stderr[-2000:])
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
