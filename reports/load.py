"""Reading run folders: `meta.json`, `conformance.parquet`, `findings.parquet` and `bench.parquet`, through the
store that wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import BENCH, CONFORMANCE

__all__ = ["Run", "RunReadError", "load_run"]

RunReadError = RunFolderError  # a missing or corrupt run folder; the message names it and the fix


@dataclass(frozen=True)
class Run:
    """A run folder's results: an audit's conformance rows, a benchmark's speed rows, or both (None if absent)."""

    path: Path
    meta: dict[str, Any]
    conformance: pd.DataFrame | None = field(default=None, repr=False)
    bench: pd.DataFrame | None = field(default=None, repr=False)
    findings: pd.DataFrame | None = field(default=None, repr=False)


def load_run(path: str | Path | Run) -> Run:
    """The run in a folder (a `Run` already loaded is returned as it is)."""
    if isinstance(path, Run):
        return path
    store = RunStore(path)
    meta = store.read_meta()
    has_conformance, has_bench = store.has_conformance(), store.has_bench()
    if not has_conformance and not has_bench:
        raise RunReadError(f"{str(store.path)!r} has neither {CONFORMANCE} nor {BENCH}; the run did not finish — "
                           "rerun it into a new folder")
    return Run(store.path, meta, store.conformance() if has_conformance else None,
               store.bench() if has_bench else None, store.findings() if store.has_findings() else None)
