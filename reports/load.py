"""Reading run folders: `meta.json` and `conformance.parquet`, nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Run", "RunReadError", "load_run"]


class RunReadError(ValueError):
    """A run folder that cannot be read; the message names it and the fix."""


@dataclass(frozen=True)
class Run:
    path: Path
    meta: dict[str, Any]
    conformance: pd.DataFrame = field(repr=False)


def load_run(path: str | Path) -> Run:
    folder = Path(path)
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        raise RunReadError(f"{str(folder)!r} is not a run folder (no meta.json); pass a folder written by "
                           "'python -m harness audit'")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunReadError(f"{str(meta_file)!r} is corrupt (not JSON); rerun the audit into a new folder") from None
    table = folder / "conformance.parquet"
    if not table.is_file():
        raise RunReadError(f"{str(folder)!r} has no conformance.parquet (the run did not finish); rerun the audit")
    try:
        conformance = pd.read_parquet(table)
    except Exception as exc:
        raise RunReadError(f"{str(table)!r} is corrupt ({type(exc).__name__}); rerun the audit") from None
    return Run(folder, meta if isinstance(meta, dict) else {}, conformance)
