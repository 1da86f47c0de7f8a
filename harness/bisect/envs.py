"""One Python environment per release, built with pip and cached (`.bce-cache/envs/`), pruned by size.

An environment holds the harness's own dependencies (pyproject's, the checkout runs from the source tree) and
the release: pip resolves it with the pins of `constraints.txt` where they fit (first all but the bisected
distribution; then with its companions free, so that each release gets, say, the optax that supports it; then
without constraints). A release that none of these installs is skipped with pip's reason."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["PROJECT", "EnvCache", "Failed", "Release", "requirement_for"]

PROJECT = Path(__file__).resolve().parents[2]
_READY = "ready.json"
_PIP_SECONDS = 1800  # one install (a framework's wheels are hundreds of MB)
def requirement_for(distribution: str, version: str, spellings: Mapping[str, str] | None = None) -> str:
    """How pip asks for one release: `name==version`, or the adapter's spelling (`jax[cpu]==…`: JAX before 0.4.3x
    did not bring its jaxlib)."""
    return (spellings or {}).get(distribution, "{name}=={version}").format(name=distribution, version=version)


@dataclass(frozen=True)
class Release:
    """A built environment: its interpreter and the versions pip resolved (the bisected one and its companions)."""

    python: Path
    versions: dict[str, str]
    how: str = ""  # which constraints pip resolved it under


@dataclass(frozen=True)
class Failed:
    """A release pip could not install, and pip's last words."""

    why: str


def _constraints(free: Sequence[str]) -> list[str]:
    """constraints.txt without the lines of the distributions left `free`."""
    names = {canonicalize_name(Requirement(name).name) for name in free}
    kept = []
    for line in (PROJECT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        try:
            if line.strip() and canonicalize_name(Requirement(line).name) not in names:
                kept.append(line)
        except InvalidRequirement:
            continue
    return kept


def _dependencies() -> list[str]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "_", text)


class EnvCache:
    """The cached environments under `root`, at most `limit_bytes` of them (the least recently used go first)."""

    def __init__(self, root: Path, limit_bytes: int, python: str = sys.executable,
                 base: Sequence[str] | None = None, pip_options: Sequence[str] = ()) -> None:
        """`base`: what every environment holds besides the release (default: the harness's dependencies);
        `pip_options`: more for pip (an index, --no-index --find-links DIR)."""
        self.root, self.limit_bytes, self.python = root.resolve(), limit_bytes, python
        self.base = list(base) if base is not None else _dependencies()
        self.pip_options = list(pip_options)

    def release(self, distribution: str, version: str, companions: Sequence[str],
                spellings: Mapping[str, str] | None = None) -> Release | Failed:
        """The environment of one release of `distribution` (built on first use; asked for as `spellings` says),
        with `companions` installed in the versions pip resolves for it."""
        folder = self.root / _slug(f"{distribution}-{version}" + "".join(f"+{c}" for c in sorted(companions)))
        ready = folder / _READY
        if self._stamp() != _stamp_of(ready):  # new, or built by another Python or for other dependencies
            built = self._build(folder, requirement_for(distribution, version, spellings), distribution, companions)
            if isinstance(built, Failed):
                return built
            self.prune(keep=folder)  # only a new environment can take the cache past its limit
        ready.touch()  # recently used: pruned last
        record = json.loads(ready.read_text(encoding="utf-8"))
        return Release(folder / "bin" / "python", record["versions"], record.get("how", ""))

    def _stamp(self) -> str:
        """What an environment was built from besides its release: the Python, the harness's dependencies and
        pins, pip's options. An environment of another stamp is rebuilt."""
        parts = [sys.version, *self.base, *self.pip_options, (PROJECT / "constraints.txt").read_text("utf-8")]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def _build(self, folder: Path, wanted: str, distribution: str, companions: Sequence[str]) -> Failed | None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([self.python, "-m", "venv", str(folder)], capture_output=True, text=True)
        if made.returncode != 0:
            return Failed(f"python -m venv failed: {made.stderr.strip()[-300:]}")
        python = folder / "bin" / "python"
        attempts = {"constraints.txt but the release": [distribution],
                    "constraints.txt but the release and its companions": [distribution, *companions],
                    "no constraints": None}
        why = ""
        for how, free in attempts.items():
            why = self._pip_install(python, folder, [wanted, *companions, *self.base], free)
            if not why:
                versions = _installed(python, [distribution, *companions])
                (folder / _READY).write_text(json.dumps({"requirement": wanted, "versions": versions, "how": how,
                                                         "stamp": self._stamp(), "built": time.time()}) + "\n",
                                             encoding="utf-8")
                return None
        shutil.rmtree(folder, ignore_errors=True)
        return Failed(f"pip could not install {wanted}: {why}")

    def _pip_install(self, python: Path, folder: Path, requirements: list[str], free: Sequence[str] | None) -> str:
        """pip install into the environment; "" when it worked, else pip's last error line."""
        command = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *self.pip_options,
                   *requirements]
        if free is not None:
            constraints = folder / "constraints.txt"
            constraints.write_text("\n".join(_constraints(free)) + "\n", encoding="utf-8")
            command += ["-c", str(constraints)]
        environment = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PYTHONPATH")}
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=_PIP_SECONDS)
        except subprocess.TimeoutExpired:
            return f"pip did not finish within {_PIP_SECONDS} s"
        if done.returncode == 0:
            return ""
        lines = [line for line in done.stderr.splitlines() if line.strip().startswith("ERROR")] or \
            done.stderr.strip().splitlines() or ["pip failed"]
        return lines[-1].strip()

    def prune(self, keep: Path) -> list[Path]:
        """Remove the least recently used environments until the rest fit the limit (never `keep`)."""
        if not self.root.is_dir():
            return []
        folders = [f for f in self.root.iterdir() if (f / _READY).is_file()]
        sizes = {f: _size(f) for f in folders}
        removed = []
        for folder in sorted(folders, key=lambda f: (f / _READY).stat().st_mtime):
            if sum(sizes.values()) <= self.limit_bytes:
                break
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)
                sizes.pop(folder)
                removed.append(folder)
        return removed


def _stamp_of(ready: Path) -> str:
    try:
        return str(json.loads(ready.read_text(encoding="utf-8")).get("stamp", ""))
    except (OSError, ValueError):
        return ""


def _installed(python: Path, names: Sequence[str]) -> dict[str, str]:
    script = ("import importlib.metadata as m, json, sys\n"
              "out = {}\n"
              "for n in sys.argv[1:]:\n"
              "    try: out[n] = m.version(n)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print(json.dumps(out))")
    done = subprocess.run([str(python), "-c", script, *(Requirement(n).name for n in names)],
                          capture_output=True, text=True)
    return json.loads(done.stdout or "{}")


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
