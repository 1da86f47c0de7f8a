"""Run folders: `meta.json`, an append-only `journal.jsonl` of rows, consolidated into `conformance.parquet`;
a benchmark adds `bench.parquet` and `bench.json` (pytest-benchmark's layout, every round).

Rows are appended (and flushed) as they are judged, so an interrupted run keeps everything it computed.
Nothing here reads with pickle or evaluates text: JSON and Parquet only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import BadInput, Case, CaseFileError, builtin_cases, case_entry, parse_cases
from harness.store.schema import (
    BENCH,
    BENCH_JOURNAL,
    BENCH_JSON,
    CASES,
    CONFORMANCE,
    CONFORMANCE_COLUMNS,
    FINDINGS,
    FINDINGS_JSON,
    INLINE_LIMIT,
    JOURNAL,
    META,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
)

__all__ = ["RunFolderError", "RunStore", "json_value"]


class RunFolderError(BadInput):
    """A run folder that cannot be created or read; the message says which and how to fix it."""


def json_value(value: Any) -> Any:
    """A value as strict JSON holds it: NaN and ±inf as the strings "nan", "inf", "-inf" (as in case files),
    NumPy scalars and arrays as Python's, through lists and dictionaries."""
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(v) for v in value]
    return value


class RunStore:
    """One run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, meta: dict[str, Any]) -> RunStore:
        """Create a new run folder; an existing non-empty folder is refused (results are never overwritten)."""
        store = cls(path)
        if store.path.exists() and (not store.path.is_dir() or any(store.path.iterdir())):
            raise RunFolderError(f"output folder {str(store.path)!r} already exists and is not empty; "
                                 "choose a new --out folder")
        try:
            store.path.mkdir(parents=True, exist_ok=True)
            (store.path / JOURNAL).touch()
        except OSError as exc:
            raise RunFolderError(f"cannot create output folder {str(store.path)!r}: {exc.strerror}; "
                                 "choose a writable --out folder") from None
        store.write_meta(dict(meta, schema_version=SCHEMA_VERSION, complete=False))
        return store

    @classmethod
    def for_bench(cls, path: str | Path, meta: dict[str, Any],
                  environment: Callable[[], dict[str, Any]] = dict) -> RunStore:
        """The folder a benchmark writes into: a new run folder (`meta` and the `environment()` scan), or one that
        holds an audit and no benchmark yet (its meta and environment are kept; `meta` goes under "bench")."""
        store = cls(path)
        if not (store.path / META).is_file():
            return cls.create(path, {**meta, **environment()})
        existing = store.read_meta()
        if (store.path / BENCH).exists() or (store.path / BENCH_JOURNAL).exists() or existing.get("bench"):
            raise RunFolderError(f"{str(store.path)!r} already holds a benchmark; choose a new --out folder")
        store.update_meta(bench=meta["bench"])
        return store

    def write_meta(self, meta: dict[str, Any]) -> None:
        self._replace(META, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")

    def _replace(self, name: str, text: str) -> None:
        """Write a file of the folder whole or not at all: a temporary file, then an atomic rename."""
        temporary = self.path / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.path / name)

    def _table(self, name: str, missing: str, rerun: str) -> pd.DataFrame:
        """A Parquet table of the folder; `missing` is the message when it is absent, `rerun` the fix when it is
        corrupt."""
        file = self.path / name
        if not file.is_file():
            raise RunFolderError(missing)
        try:
            return pd.read_parquet(file)
        except Exception as exc:
            raise RunFolderError(f"{str(file)!r} is corrupt ({type(exc).__name__}); {rerun}") from None

    def read_json(self, name: str, missing: str) -> dict[str, Any]:
        """A JSON object from the folder; `missing` is the message when the file is absent."""
        file = self.path / name
        if not file.is_file():
            raise RunFolderError(missing)
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunFolderError(f"{str(file)!r} is corrupt (not JSON); rerun that run into a new folder") from None
        if not isinstance(document, dict):
            raise RunFolderError(f"{str(file)!r} is corrupt (not a JSON object); rerun that run into a new folder")
        return document

    def read_meta(self) -> dict[str, Any]:
        """meta.json, refused when the folder was written with a schema this version cannot read."""
        meta = self.read_json(META, f"{str(self.path)!r} is not a run folder (no {META}); pass a folder written "
                                    "by 'python -m harness audit'")
        version = meta.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
            raise RunFolderError(f"{str(self.path)!r} was written with schema version {version!r}; this version "
                                 f"reads {readable} — rerun it, or read it with the bce-harness that wrote it")
        return meta

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    def write_cases(self, cases: Iterable[Case], seed: int) -> None:
        """Store the run's inputs: small cases value by value (exact hex), large built-in ones by family, seed,
        recipe and a hash of their bytes, from which `read_cases` regenerates and checks them."""
        inline, generated = [], []
        for case in cases:
            if case.size > INLINE_LIMIT and case.recipe:
                generated.append({"name": case.name, "family": case.family, "digest": case.digest(),
                                  "recipe": case.recipe})
            else:
                inline.append(case_entry(case))
        document = {"seed": seed, "cases": inline, "generated": generated}
        (self.path / CASES).write_text(json.dumps(document) + "\n", encoding="utf-8")

    def read_cases(self) -> dict[str, Case]:
        """The run's cases by name, regenerated and checked against their hashes where stored by recipe."""
        file = self.path / CASES
        document = self.read_json(CASES, f"{str(self.path)!r} has no {CASES}; it was written by an older version "
                                          "— rerun the audit")
        try:
            inline = parse_cases(document, source=str(file)) if document.get("cases") else []
            found = {case.name: case for case in inline}
        except CaseFileError as exc:
            raise RunFolderError(f"{str(file)!r} is corrupt ({exc}); rerun the audit") from None
        for entry in document.get("generated", []):
            family_cases = {c.name: c for c in builtin_cases(document.get("seed", 0), [entry["family"]])}
            case = family_cases.get(entry["name"])
            if case is None or case.digest() != entry["digest"]:
                raise RunFolderError(f"case {entry['name']!r} of {str(file)!r} no longer regenerates to the same "
                                     "bytes (the family changed); rerun the audit")
            found[case.name] = case
        return found

    def append(self, rows: Iterable[dict[str, Any]], journal_name: str = JOURNAL) -> None:
        """Append one record to the journal: the rows of one cell, as one JSON line, so that a run killed in the
        middle of a write loses that cell whole (the cut line is dropped) and never keeps half of it. Each append
        reaches the operating system at once; the file is synced to disk when the run finishes (`sync`)."""
        line = json.dumps({"rows": list(rows)}, default=float) + "\n"
        with open(self.path / journal_name, "a", encoding="utf-8") as journal:
            journal.write(line)

    def journal_rows(self, journal_name: str = JOURNAL) -> list[dict[str, Any]]:
        """The journal's rows; a last line cut short by an interruption is dropped."""
        file = self.path / journal_name
        if not file.is_file():
            return []
        rows: list[dict[str, Any]] = []
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                rows.extend(record["rows"] if isinstance(record.get("rows"), list) else [record])
        return rows

    def sync(self, journal_name: str = JOURNAL) -> None:
        """Make the journal durable on disk (once per run: a sync per cell would cost more than the cells)."""
        with open(self.path / journal_name, "a", encoding="utf-8") as journal:
            os.fsync(journal.fileno())

    def consolidate(self) -> pd.DataFrame:
        """Write `conformance.parquet` from the journal (last row wins per row_id) and return it."""
        self.sync()
        frame = pd.DataFrame(self.journal_rows())
        if frame.empty:
            frame = pd.DataFrame(columns=CONFORMANCE_COLUMNS)
        frame = frame.drop_duplicates("row_id", keep="last").reset_index(drop=True)
        frame = frame[[c for c in CONFORMANCE_COLUMNS if c in frame.columns]]
        frame.to_parquet(self.path / CONFORMANCE, index=False)
        return frame

    def conformance(self) -> pd.DataFrame:
        """The run's rows; columns a run of an older schema lacks are there, empty (`failures`, `relation`)."""
        frame = self._table(CONFORMANCE, f"{str(self.path)!r} has no {CONFORMANCE}; the run did not finish — "
                                         "rerun the audit", "rerun the audit")
        for column in ("failures", "relation"):
            if column not in frame.columns:
                frame[column] = ""
        return frame

    def write_findings(self, frame: pd.DataFrame) -> None:
        """`findings.parquet`, and `findings.json` (the same rows, as a list of objects; non-finite numbers as
        the strings "inf", "-inf", "nan", as in case files, so that the file is strict JSON)."""
        frame.to_parquet(self.path / FINDINGS, index=False)
        records = [{key: json_value(value) for key, value in record.items()}
                   for record in frame.to_dict(orient="records")]
        self._replace(FINDINGS_JSON, json.dumps({"findings": records}, indent=1, allow_nan=False,
                                                ensure_ascii=False) + "\n")

    def has_findings(self) -> bool:
        return (self.path / FINDINGS).is_file()

    def findings(self) -> pd.DataFrame:
        fix = f"write it with 'python -m harness report {self.path}'"
        frame = self._table(FINDINGS, f"{str(self.path)!r} has no {FINDINGS}; {fix}", fix)
        for column in frame.columns:  # lists come back as arrays
            if len(frame) and isinstance(frame[column].iloc[0], np.ndarray):
                frame[column] = frame[column].map(list)
        return frame

    def write_bench(self, frame: pd.DataFrame, document: dict[str, Any]) -> None:
        """`bench.parquet` and the pytest-benchmark JSON (`pytest-benchmark compare` reads it)."""
        frame.to_parquet(self.path / BENCH, index=False)
        self._replace(BENCH_JSON, json.dumps(document, indent=1, default=float) + "\n")

    def has_cases(self) -> bool:
        return (self.path / CASES).is_file()

    def has_conformance(self) -> bool:
        return (self.path / CONFORMANCE).is_file()

    def has_bench(self) -> bool:
        return (self.path / BENCH).is_file()

    def bench_document(self) -> dict[str, Any]:
        """The pytest-benchmark JSON of the run's benchmark."""
        return self.read_json(BENCH_JSON, f"{str(self.path)!r} has no {BENCH_JSON}; rerun the benchmark")

    def bench(self) -> pd.DataFrame:
        return self._table(BENCH, f"{str(self.path)!r} has no {BENCH}; run 'python -m harness bench --out "
                                  f"{self.path}'", "rerun the benchmark")
