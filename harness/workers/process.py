"""What every worker process does for itself, in either pipeline: load its adapter, send its framework's chatter
to a log file, and turn an exception into one line. Also how the parent reads a process: its end and its memory."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing.process import BaseProcess
from typing import Any

from implementations import Adapter, adapter_classes

__all__ = ["adapter_instance", "death", "die_with_parent", "one_line", "redirect_output", "resident_bytes"]

_PR_SET_PDEATHSIG = 1


def _prctl() -> Any:
    """libc's prctl, looked up once here (never between a fork and an exec), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent() -> None:
    """Have Linux kill this process when the thread that started it ends (PR_SET_PDEATHSIG): a worker whose
    audit was killed, or an audit whose job runner was, does not run on orphaned. Elsewhere, nothing. Safe
    between a fork and an exec (a `preexec_fn`): it only calls a function looked up before."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def adapter_instance(framework: str) -> Adapter:
    return adapter_classes()[framework]()


def redirect_output(log_path: str | None) -> None:
    """Send the framework's own chatter (import banners, C++ logging) to a log file, not the user's terminal."""
    if log_path is None:
        return
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)


def one_line(exc: BaseException) -> str:
    """The exception's message without the framework's traceback decorations: its last non-empty line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:500]


def death(process: BaseProcess) -> str:
    """How a worker process ended, for a `crashed` row: the signal that killed it, or its exit code."""
    code = process.exitcode
    if code is not None and code < 0:
        return f"worker died with signal {-code}"
    return f"worker exited with code {code}"


def resident_bytes(pid: int | None) -> int:
    """A process's resident set (0 when it is gone or the OS has no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0
