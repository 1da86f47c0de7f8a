"""Run folders: the one schema (columns, row ids, file names, versions), the folder itself (meta.json, journals,
tables) and the scan of the machine and software recorded with every run.

Its names load on first use: a worker process needs the schema, not the folder's pandas."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.store.folder import RunFolderError, RunStore
    from harness.store.schema import (
        BENCH_COLUMNS,
        CONFORMANCE_COLUMNS,
        SCHEMA_VERSION,
        CellKey,
        ConformanceRow,
        Shard,
        bench_row_id,
        row_id,
    )

_WHERE = {
    **dict.fromkeys(("RunFolderError", "RunStore"), "harness.store.folder"),
    **dict.fromkeys(("BENCH_COLUMNS", "CONFORMANCE_COLUMNS", "SCHEMA_VERSION", "CellKey", "ConformanceRow", "Shard",
                     "bench_row_id", "row_id"), "harness.store.schema"),
}

__all__ = [
    "BENCH_COLUMNS",
    "CONFORMANCE_COLUMNS",
    "SCHEMA_VERSION",
    "CellKey",
    "ConformanceRow",
    "RunFolderError",
    "RunStore",
    "Shard",
    "bench_row_id",
    "row_id",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness.store' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
