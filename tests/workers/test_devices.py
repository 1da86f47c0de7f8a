"""Discovery of each framework's devices, kept in the cache by installed versions and machine: a second `list`
imports nothing, and another machine (another fingerprint) discovers again."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.workers import devices as discovery
from harness.workers.messages import Hello
from implementations import adapter_classes


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BCE_HARNESS_CACHE", str(tmp_path))
    return tmp_path


def test_devices_are_discovered_once_then_read_from_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = {"numpy": adapter_classes()["numpy"]}
    first = discovery.known_devices(numpy)["numpy"]
    assert isinstance(first, Hello) and first.devices == ["cpu"] and first.versions["numpy"]
    assert len(list((cache / "devices").glob("numpy-*.json"))) == 1

    def no_worker(adapters: dict[str, object], *_: object) -> dict[str, object]:
        assert not adapters, f"discovered again: {list(adapters)}"
        return {}

    monkeypatch.setattr(discovery, "discover", no_worker)
    again = discovery.known_devices(numpy)["numpy"]
    assert isinstance(again, Hello) and (again.devices, again.versions) == (first.devices, first.versions)
    monkeypatch.setattr(discovery, "machine_fingerprint", lambda: "a machine with a GPU")
    with pytest.raises(AssertionError, match="discovered again: \\['numpy'\\]"):
        discovery.known_devices(numpy)


def test_a_framework_that_is_not_installed_is_said_so(cache: Path) -> None:
    from tests.conformance.test_runner import Missing

    assert discovery.known_devices({"notinstalled": Missing}) == {
        "notinstalled": "notinstalled is not installed; install it (pip install 'bce-harness[notinstalled]')"}
