"""Reading run folders: `meta.json` and `conformance.parquet`, through the store that wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store import RunFolderError, RunStore

__all__ = ["Run", "RunReadError", "load_run"]

RunReadError = RunFolderError  # a missing or corrupt run folder; the message names it and the fix


@dataclass(frozen=True)
class Run:
    path: Path
    meta: dict[str, Any]
    conformance: pd.DataFrame = field(repr=False)


def load_run(path: str | Path) -> Run:
    store = RunStore(path)
    return Run(store.path, store.read_meta(), store.conformance())
