"""Shared fixtures: a private reference cache per test session, and helpers to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["BCE_HARNESS_CACHE"] = str(tmp_path_factory.mktemp("reference-cache"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            extra_path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m harness ARGS` as a user would, from the checkout (`extra_path`: more import paths first)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (extra_path, str(ROOT)) if p))
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout, check=False)


def assert_usage_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Bad input to the tool: exit code 2 and one line on stderr that says `fragment`, never a traceback."""
    assert done.returncode == 2, (done.stdout[-500:], done.stderr[-2000:])
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
