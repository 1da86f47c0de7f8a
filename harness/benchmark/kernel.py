"""The speed-of-light kernel: what this machine can do for BCE, as the limit a framework's time is held against.

`kernel.c` is one fused, vectorised pass of the stable formula over the same bytes the frameworks read (the loss
for `forward`; the loss and its gradient for `forward_backward`), with as many threads as the frameworks get
(OpenMP; one thread below 32768 elements, PyTorch's grain size). It is built with the system's C compiler at first
use (`$CC`, else gcc, cc or clang), `-O3 -march=native`, and cached by source, compiler, flags and CPU under the
harness's cache folder. The compiler, its flags, the SIMD width it targeted and its own report of the loops it
vectorised go into meta.json. A kernel is only a limit if it is right: `accuracy` judges its results against
the exact reference with the pass tolerance.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cases import CaseInputs, float_format
from harness.verdict.oracle import Reference, reference_uncached
from harness.verdict.ulp import judge

__all__ = ["FLOAT64_CHECKED", "KERNEL_DTYPES", "Kernel", "KernelBuild", "KernelUnavailable", "build_kernel"]

KERNEL_DTYPES = ("float32", "float64", "bfloat16")
FLOAT64_CHECKED = 4096  # float64 elements judged against mpmath (see Kernel.accuracy)
_SOURCE = Path(__file__).with_name("kernel.c")
_BASE_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=gnu11")
# x86: the widest vectors the CPU has (gcc and clang keep to 256 bits by default; 512 is 1.4× faster on AVX-512)
_X86_FLAGS = ("-mprefer-vector-width=512",)
_THREADING = (("-fopenmp",), ("-fopenmp-simd",))  # OpenMP threads, else one thread (still vectorised)
_REPORTS = {"gcc": ("-fopt-info-vec-optimized",), "clang": ("-Rpass=loop-vectorize",)}


class KernelUnavailable(RuntimeError):
    """No kernel on this machine: no C compiler, or it could not build the source (the message says which)."""


@dataclass(frozen=True, slots=True)
class KernelBuild:
    """How the kernel was built, for meta.json: compiler, flags, SIMD width, threading, vectorised loops."""

    compiler: str
    version: str
    flags: tuple[str, ...]
    simd_bits: int  # the widest SIMD registers the target instruction set has
    vector_bits: int | None  # the widest vectors the compiler says it used in the loops (gcc's report)
    openmp: bool
    vectorized: tuple[str, ...]  # the compiler's own lines about the loops it vectorised
    dtypes: tuple[str, ...]
    library: str

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "flags": list(self.flags), "vectorized": list(self.vectorized),
                "dtypes": list(self.dtypes)}


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    raise KernelUnavailable("no C compiler found (set CC, or install gcc)")


def _version(compiler: str) -> str:
    try:
        found = subprocess.run([*compiler.split(), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelUnavailable(f"{compiler} --version failed: {exc}") from None
    return (found.stdout.splitlines() or ["unknown"])[0].strip()


def _cpu() -> str:
    """The CPU the -march=native build is for: its model and feature flags (Linux), or the platform's name."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(lines))


def _cache_folder() -> Path:
    return Path(os.environ.get("BCE_HARNESS_CACHE", ".bce-cache")) / "kernel"


def _report_flags(version: str) -> tuple[str, ...]:
    return _REPORTS["clang" if "clang" in version.lower() else "gcc"]


def _compile(compiler: str, flags: tuple[str, ...], target: Path) -> subprocess.CompletedProcess[str]:
    command = [*compiler.split(), *flags, _SOURCE.name, "-o", str(target)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=_SOURCE.parent)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelUnavailable(f"{' '.join(command)} failed: {exc}") from None


def build_kernel(cache: Path | None = None) -> KernelBuild:
    """Build the kernel (or find it built) and load it once to read what it was built for.

    Raises `KernelUnavailable` with the reason when there is no compiler or no flags it accepts."""
    compiler = _compiler()
    version = _version(compiler)
    folder = (cache if cache is not None else _cache_folder()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    built_for = [_SOURCE.read_text(encoding="utf-8"), version, _cpu()]  # what a cached build must match, with flags
    for threading in _THREADING:
        flags = (*_BASE_FLAGS, *(_X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else ()), *threading)
        key = hashlib.sha256("\0".join([*built_for, *flags]).encode())
        library = folder / f"bce-kernel-{key.hexdigest()[:20]}.so"
        report = library.with_suffix(".txt")
        if not library.is_file():
            with tempfile.TemporaryDirectory(dir=folder) as scratch:  # processes building at once each write their own
                built = _compile(compiler, (*flags, *_report_flags(version)), Path(scratch) / library.name)
                if built.returncode != 0:
                    said = [line for line in built.stderr.splitlines() if "error" in line] or ["no message"]
                    errors.append(f"{compiler} {' '.join(flags)}: {said[0].strip()}")
                    continue
                lines = [line.strip() for line in built.stderr.splitlines() if "vectori" in line]
                (Path(scratch) / report.name).write_text("\n".join(lines), encoding="utf-8")
                os.replace(Path(scratch) / report.name, report)
                os.replace(Path(scratch) / library.name, library)
        return _described(compiler, version, flags, library, report)
    raise KernelUnavailable("the C compiler could not build the kernel: " + "; ".join(errors))


def _described(compiler: str, version: str, flags: tuple[str, ...], library: Path, report: Path) -> KernelBuild:
    loaded = ctypes.CDLL(str(library))
    dtypes = tuple(name for name in KERNEL_DTYPES if hasattr(loaded, f"bce_forward_{name}"))
    vectorized = tuple(report.read_text(encoding="utf-8").splitlines()) if report.is_file() else ()
    widths = [8 * int(found) for line in vectorized for found in re.findall(r"using (\d+) byte vectors", line)]
    return KernelBuild(compiler, version, flags, int(loaded.bce_simd_bits()), max(widths, default=None),
                       bool(loaded.bce_openmp()), tuple(dict.fromkeys(vectorized)), dtypes, str(library))


@dataclass(frozen=True, slots=True)
class _Call:
    """One timed call of the kernel: the C function and its arguments (the arrays' addresses, taken once), with
    the arrays themselves kept alive while the call exists."""

    function: Callable[..., float]
    arguments: tuple[int, ...]
    arrays: tuple[np.ndarray, ...]

    def __call__(self) -> float:
        return self.function(*self.arguments)


class Kernel:
    """The built kernel, loaded in this process, with `threads` threads."""

    def __init__(self, build: KernelBuild, threads: int) -> None:
        self.build = build
        self.threads = threads if build.openmp else 1
        self._library = ctypes.CDLL(build.library)
        self._reference: tuple[str, Reference] | None = None  # the last exact value: both directions judge it
        pointer, size = ctypes.c_void_p, ctypes.c_long
        for name in build.dtypes:
            forward = getattr(self._library, f"bce_forward_{name}")
            forward.argtypes, forward.restype = [pointer, pointer, size, ctypes.c_int], ctypes.c_double
            both = getattr(self._library, f"bce_forward_backward_{name}")
            both.argtypes, both.restype = [pointer, pointer, pointer, size, ctypes.c_int], ctypes.c_double

    def function(self, x: np.ndarray, y: np.ndarray, direction: str) -> Callable[[], float]:
        """The timed call: the sum of the loss over x and y (and, for forward_backward, the gradient of the mean
        written into a buffer made once here, `gradient`). Returns the sum."""
        call, _ = self._prepared(x, y, direction)
        return call

    def _prepared(self, x: np.ndarray, y: np.ndarray, direction: str) -> tuple[Callable[[], float], np.ndarray]:
        name = x.dtype.name
        if name not in self.build.dtypes or y.dtype != x.dtype:
            raise KernelUnavailable(f"the kernel has no {name} (built for {', '.join(self.build.dtypes)})")
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        grad = np.empty_like(x) if direction == "forward_backward" else np.empty(0, x.dtype)
        pointers = [array.ctypes.data for array in (x, y, grad)]  # addresses taken once, not per call
        if direction == "forward":
            forward = getattr(self._library, f"bce_forward_{name}")
            return _Call(forward, (*pointers[:2], x.size, self.threads), (x, y)), grad
        both = getattr(self._library, f"bce_forward_backward_{name}")
        return _Call(both, (*pointers, x.size, self.threads), (x, y, grad)), grad

    def accuracy(self, x: np.ndarray, y: np.ndarray, direction: str) -> tuple[bool, str]:
        """Whether the kernel's mean loss (and its gradient, for forward_backward) on x and y is within the pass
        tolerance of the exact reference, and the worst errors in ULPs.

        float64 is judged on its first `FLOAT64_CHECKED` elements only: its exact reference is mpmath's, at about
        0.2 ms an element (the float32 and bfloat16 references are proven float64 formulas, fast at any size)."""
        dtype = x.dtype.name
        shown = ""
        if dtype == "float64" and x.size > FLOAT64_CHECKED:
            x, y, shown = x[:FLOAT64_CHECKED], y[:FLOAT64_CHECKED], f" on the first {FLOAT64_CHECKED:,} elements"
        call, grad = self._prepared(x, y, direction)
        total = call()
        n = x.size
        fmt = float_format(dtype)
        reference = self._exact(CaseInputs(dtype, x, y, None, None))
        mean = np.asarray(total / n).astype(x.dtype).astype(np.float64)  # the mean, rounded once to the dtype
        verdicts = {"loss": judge(mean, *reference.loss("mean"), fmt, reduced_over=n)}
        if direction == "forward_backward":
            verdicts["grad"] = judge(grad.astype(np.float64), *reference.grad("mean"), fmt, None)
        ok = all(verdict.status == "pass" for verdict in verdicts.values())
        return ok, ", ".join(f"{what} {verdict.status} ({verdict.max_ulp_error:.2g} ULP)"
                             for what, verdict in verdicts.items()) + shown

    def _exact(self, inputs: CaseInputs) -> Reference:
        """The exact reference of these inputs, computed once for both directions of a group (not stored on disk:
        at 1e7 elements it would take hundreds of MB there)."""
        digest = inputs.digest()
        if self._reference is None or self._reference[0] != digest:
            self._reference = digest, reference_uncached(inputs, "logits")
        return self._reference[1]
