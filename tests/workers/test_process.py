"""What every worker does for itself, and how the parent reads a process."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, cast

from harness.workers.process import adapter_instance, death, one_line, resident_bytes
from implementations.numpy_adapter import NumpyAdapter


def test_one_line_keeps_the_last_line_of_a_framework_s_message() -> None:
    error = RuntimeError("Traceback (most recent call last):\n  File x\n\nValueError: shapes (2,) and (3,)\n\n")
    assert one_line(error) == "ValueError: shapes (2,) and (3,)"
    assert one_line(RuntimeError("")) == ""
    assert len(one_line(RuntimeError("x" * 900))) == 500


def test_death_names_the_signal_or_the_exit_code() -> None:
    assert death(cast(Any, SimpleNamespace(exitcode=-11))) == "worker died with signal 11"
    assert death(cast(Any, SimpleNamespace(exitcode=3))) == "worker exited with code 3"


def test_resident_bytes_of_this_process_and_of_none() -> None:
    assert resident_bytes(os.getpid()) > 10 * 2**20  # this interpreter with numpy holds tens of MiB
    assert resident_bytes(2**22 + 12345) == 0  # no such process


def test_adapter_instance_comes_from_the_registry() -> None:
    assert isinstance(adapter_instance("numpy"), NumpyAdapter)
