"""Importing the harness loads no framework (checked in a fresh interpreter, every module of every package)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "optax", "jaxlib")


def test_importing_every_module_imports_no_framework() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import cases, harness, implementations, reports\n"
        "for package in (cases, harness, implementations, reports):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "implementations.adapter_classes()\n"
        f"loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)\n"
        "print(len(sys.modules), ','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    count, _, loaded = done.stdout.strip().partition(" ")
    assert int(count) > 100 and loaded == "", done.stdout  # the walk imported modules, and no framework
