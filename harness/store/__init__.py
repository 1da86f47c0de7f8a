"""Run folders: the one schema (columns, row ids, file names, versions), the folder itself (meta.json, journals,
tables) and the scan of the machine and software recorded with every run."""

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
