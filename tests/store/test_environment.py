"""The machine scan: a fingerprint of the hardware, never of the moment, and the frameworks' versions asked of
their adapters."""

from __future__ import annotations

import importlib.metadata

from harness.store.environment import collect_environment, fingerprint, package_versions
from implementations import adapter_classes


def test_fingerprint_is_the_hardware_not_the_moment() -> None:
    cpu = {"machine": "x86_64", "model": "Some CPU", "logical_cpus": 2, "flags": ["avx2"]}
    assert fingerprint(cpu, []) == fingerprint(dict(cpu), [])
    assert fingerprint(cpu, []) != fingerprint(dict(cpu, model="Other CPU"), [])
    assert fingerprint(cpu, []) != fingerprint(cpu, [{"name": "NVIDIA H200", "driver": "580.1", "memory": "x"}])
    # the memory figure is not part of it (free and total memory are reported differently by drivers)
    assert (fingerprint(cpu, [{"name": "G", "driver": "1", "memory": "1 MiB"}])
            == fingerprint(cpu, [{"name": "G", "driver": "1", "memory": "2 MiB"}]))
    assert collect_environment()["fingerprint"] == collect_environment()["fingerprint"]


def test_package_versions_come_from_every_adapter() -> None:
    versions = package_versions()
    for adapter in adapter_classes().values():
        for name in (*adapter.distributions, *adapter.companions):
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                assert name not in versions
            else:
                assert versions[name] == installed
    assert versions["numpy"] and "torch" in versions  # the harness's own, and a framework's from its adapter
