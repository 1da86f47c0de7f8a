"""The environments of fake releases, built by pip from a local folder of wheels (no downloads): built once,
cached, rebuilt when what they were built from changes, pruned by size; a release pip cannot install is a
`Failed` with pip's words."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from harness.bisect import EnvCache, Failed, Release


@pytest.fixture(autouse=True)
def _venv_with_pip() -> None:
    import importlib.util

    if importlib.util.find_spec("ensurepip") is None:
        pytest.skip("this Python has no ensurepip (Debian: apt install python3-venv): no environment can be built")


def _wheel(folder: Path, version: str) -> None:
    """A pure-Python wheel of the fake framework `bce-fake-fw` at `version`."""
    info = f"bce_fake_fw-{version}.dist-info"
    with zipfile.ZipFile(folder / f"bce_fake_fw-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr("bce_fake_fw/__init__.py", f"VERSION = {version!r}\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: bce-fake-fw\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


@pytest.mark.slow  # two virtual environments
def test_release_environments_are_built_once_cached_and_pruned(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        _wheel(wheels, version)
    envs = EnvCache(tmp_path / "envs", limit_bytes=2**40, base=[],
                    pip_options=["--no-index", "--find-links", str(wheels)])
    first = envs.release("bce-fake-fw", "1.0", [])
    assert isinstance(first, Release) and first.versions == {"bce-fake-fw": "1.0"} and first.python.is_file()
    assert envs.release("bce-fake-fw", "1.0", []) == first  # cached: no second build
    missing = envs.release("bce-fake-fw", "3.0", [])
    assert isinstance(missing, Failed) and "3.0" in missing.why and "bce-fake-fw" in missing.why
    assert not (tmp_path / "envs" / "bce-fake-fw-3.0").exists()
    envs.limit_bytes = 1  # over the limit: the least recently used go, never the one in use
    second = envs.release("bce-fake-fw", "2.0", [])
    assert isinstance(second, Release) and second.versions == {"bce-fake-fw": "2.0"}
    assert [f.name for f in (tmp_path / "envs").iterdir()] == ["bce-fake-fw-2.0"]
    assert second.how == "constraints.txt but the release"
    ready = tmp_path / "envs" / "bce-fake-fw-2.0" / "ready.json"
    ready.write_text(json.dumps({**json.loads(ready.read_text()), "stamp": "another python"}))
    envs.limit_bytes = 2**40
    rebuilt = envs.release("bce-fake-fw", "2.0", [])  # built for another Python or other dependencies: again
    assert isinstance(rebuilt, Release) and json.loads(ready.read_text())["stamp"] != "another python"
