"""Importing the harness loads no framework (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras", "optax", "jaxlib")


def test_importing_the_packages_imports_no_framework() -> None:
    code = (
        "import sys, harness, implementations, cases, reports, harness.cli, harness.worker\n"
        "implementations.adapter_classes()\n"
        f"loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == ""
