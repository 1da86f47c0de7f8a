"""What was true of the machine and the software when a run was made (recorded in `meta.json`)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from implementations import Adapter, adapter_classes

__all__ = ["cache_root", "collect_environment", "fingerprint", "gpus", "machine_fingerprint", "package_versions"]

# the harness's own packages that change numbers or timings; the frameworks' come from their adapters
PACKAGES = ("numpy", "ml_dtypes", "pandas", "pyarrow", "mpmath", "gmpy2", "scipy", "pytest-benchmark")
ENV_VARIABLES = ("XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "TF_NUM_INTRAOP_THREADS", "KERAS_BACKEND",
                 "JAX_ENABLE_X64", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED")
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "neon", "asimd")


def package_versions(adapters: Iterable[type[Adapter]] | None = None) -> dict[str, str]:
    """Installed versions of the harness's own packages and of every adapter's framework and companions (by
    default every registered adapter's)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    for adapter in adapters if adapters is not None else adapter_classes().values():
        versions.update(adapter.distribution_versions())
    return dict(sorted(versions.items()))


def cache_root() -> Path:
    """The harness's cache folder: $BCE_HARNESS_CACHE, else `.bce-cache/` in the working directory (references,
    compiled kernels, the devices each framework sees)."""
    return Path(os.environ.get("BCE_HARNESS_CACHE", ".bce-cache"))


def machine_fingerprint() -> str:
    """This machine's stable id (see `fingerprint`)."""
    return fingerprint(_cpu(), gpus())


def _cpu() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor(),
                            "logical_cpus": os.cpu_count()}
    with contextlib.suppress(AttributeError):  # not on every OS
        info["affinity"] = len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("model name") and "model" not in info:
                info["model"] = line.split(":", 1)[1].strip()
            if line.startswith(("flags", "Features")) and "flags" not in info:
                present = set(line.split(":", 1)[1].split())
                info["flags"] = [flag for flag in CPU_FLAGS if flag in present]
    return info


def _flush_to_zero() -> bool:
    """Whether this process flushes float32 subnormals to zero (set by some BLAS and compilers' fast-math)."""
    tiny = np.array([np.finfo(np.float32).smallest_subnormal], dtype=np.float32)
    return bool((tiny * np.float32(1.0))[0] == 0)


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = done.stdout.strip()
    return f"{commit}-dirty" if commit and dirty.stdout.strip() else commit


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as the driver reports them (model, driver, memory); empty without nvidia-smi."""
    query = "name,driver_version,memory.total"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    found = []
    for line in done.stdout.strip().splitlines():
        name, driver, memory = ([part.strip() for part in line.split(",")] + ["", "", ""])[:3]
        found.append({"name": name, "driver": driver, "memory": memory})
    return found


def fingerprint(cpu: dict[str, Any], gpu_list: list[dict[str, str]]) -> str:
    """A stable id of the machine: CPU model, count and flags, GPU models and driver; nothing that jitters
    (clock speeds, load, free memory), so two runs on one machine share it."""
    stable = {"machine": cpu.get("machine"), "model": cpu.get("model"), "logical_cpus": cpu.get("logical_cpus"),
              "flags": cpu.get("flags"), "gpus": [(g.get("name"), g.get("driver")) for g in gpu_list]}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def collect_environment(adapters: Iterable[type[Adapter]] | None = None) -> dict[str, Any]:
    """What meta.json records of the machine and the software (`adapters`: whose frameworks' versions)."""
    cpu, gpu_list = _cpu(), gpus()
    return {
        "fingerprint": fingerprint(cpu, gpu_list),
        "gpus": gpu_list,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(adapters),
        "cpu": cpu,
        "flush_to_zero": _flush_to_zero(),
        "environment_variables": {name: os.environ[name] for name in ENV_VARIABLES if name in os.environ},
        "git_commit": _git_commit(),
        "command": " ".join(sys.argv),
    }
