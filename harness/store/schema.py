"""The one schema of a run folder: file names, the columns of every table, row ids, and which versions readers
accept. Writers (the pipelines, merge) and readers (`reports/`) import it from here and nowhere else.

`SCHEMA_VERSION` goes up whenever a file's columns change; `READABLE_SCHEMA_VERSIONS` lists the versions this
code reads (a reader refuses any other with a one-line error).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from cases import BadInput

__all__ = [
    "BENCH",
    "BENCH_COLUMNS",
    "BENCH_JOURNAL",
    "BENCH_JSON",
    "BENCH_TEXT_COLUMNS",
    "CASES",
    "CONFORMANCE",
    "CONFORMANCE_COLUMNS",
    "FINDINGS",
    "FINDINGS_JSON",
    "INLINE_LIMIT",
    "JOURNAL",
    "META",
    "OUTPUTS",
    "READABLE_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "CellKey",
    "ConformanceRow",
    "Shard",
    "bench_row_id",
    "row_id",
]

# 2: conformance rows carry `failures` (their failing elements by region and failure mode); findings.parquet
# 3: conformance rows carry `relation` (the identity a check="relation" row tests); quantities beyond loss, grad
# 4: bench rows carry the limit (limit_s, limit_kind, fraction_of_limit) and the self-check (stable, own_timer…)
SCHEMA_VERSION = 4
READABLE_SCHEMA_VERSIONS = (1, 2, 3, 4)

META = "meta.json"
JOURNAL = "journal.jsonl"
CASES = "cases.json"
CONFORMANCE = "conformance.parquet"
OUTPUTS = "outputs.jsonl"  # outputs of the cells an identity across frameworks compares (merge checks it)
BENCH = "bench.parquet"
BENCH_JSON = "bench.json"
BENCH_JOURNAL = "bench-journal.jsonl"
FINDINGS = "findings.parquet"  # one row per finding (harness.findings builds it; its columns live there)
FINDINGS_JSON = "findings.json"  # the same, for people and tools that read JSON
INLINE_LIMIT = 4096  # cases up to this many elements are stored value by value in cases.json; larger ones by recipe


def row_id(impl: str, case: str, dtype: str, device: str, reduction: str, quantity: str,
           check: str = "reference", mode: str = "eager", relation: str = "") -> str:
    """Stable hash of a conformance row's key: the same cell of the matrix has the same id in every run. The
    relation joins the key only for relation rows, so the ids of every other row stay what they were."""
    parts = (impl, case, dtype, device, reduction, quantity, check, mode) + ((relation,) if relation else ())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def bench_row_id(impl: str, mode: str, direction: str, device: str, dtype: str, n: str) -> str:
    """Stable hash of a bench row's key: the same configuration has the same id in every run."""
    key = "|".join(("bench", impl, mode, direction, device, dtype, n))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ConformanceRow:
    """One judged result: a row of `conformance.parquet` (the fields, in order, are its columns)."""

    run_id: str = ""
    row_id: str = ""
    framework: str = ""
    framework_version: str = ""
    impl: str = ""
    api: str = ""
    input_form: str = ""
    device: str = ""
    dtype: str = ""
    out_dtype: str = ""
    case: str = ""
    family: str = ""
    reduction: str = ""
    quantity: str = ""
    check: str = "reference"
    relation: str = ""  # for check="relation": the identity's name (symmetry, pos_weight_one, …)
    mode: str = "eager"
    n: int = 0
    status: str = ""
    deviation: str = ""
    max_ulp_error: float = math.nan
    max_abs_error: float = math.nan
    max_rel_error: float = math.nan
    n_bad: int = 0
    worst_index: str = ""  # JSON list of the worst element's index; empty for a scalar
    worst_x: float = math.nan
    worst_y: float = math.nan
    got: float = math.nan
    expected: float = math.nan
    error_type: str = ""
    error_message: str = ""
    failures: str = ""  # JSON: the failing elements by (region, failure mode), each group's count and worst one

    def with_id(self) -> ConformanceRow:
        """This row with its `row_id` computed from its key."""
        return replace(self, row_id=row_id(self.impl, self.case, self.dtype, self.device, self.reduction,
                                           self.quantity, self.check, self.mode, self.relation))

    def record(self) -> dict[str, Any]:
        """The row as the journal stores it (one JSON object)."""
        return {name: getattr(self, name) for name in CONFORMANCE_COLUMNS}


CONFORMANCE_COLUMNS = [f.name for f in fields(ConformanceRow)]


class CellKey(NamedTuple):
    """What identifies one computed cell across runs (its rows are its quantities): `audit --resume` skips the
    cells a journal already holds."""

    impl: str
    case: str
    dtype: str
    device: str
    reduction: str
    mode: str
    check: str
    relation: str = ""

    @classmethod
    def of(cls, row: dict[str, Any]) -> CellKey:
        return cls(*(str(row.get(name) or "") for name in cls._fields))


BENCH_COLUMNS = [
    "run_id", "row_id", "framework", "framework_version", "impl", "input_form", "device", "dtype", "n", "direction",
    "mode", "rounds", "iterations", "sweeps", "processes", "median_s", "iqr_s", "min_s", "mean_s", "compile_s",
    "bytes", "gbps", "baseline_gbps", "roofline_fraction", "ratio_to_best", "ratio_low", "ratio_high",
    "peak_memory_bytes", "peak_memory_note", "limit_s", "limit_kind", "fraction_of_limit", "stable", "stability_note",
    "own_timer", "own_timer_s", "status", "status_detail", "error_type", "error_message",
]
BENCH_TEXT_COLUMNS = ("error_type", "error_message", "status", "status_detail", "peak_memory_note", "limit_kind",
                      "stability_note", "own_timer")


class Shard(NamedTuple):
    """Part `number` (1-based) of `total`: a deterministic split of the matrix, so that CI jobs or machines share
    the work and `merge` puts the parts back together."""

    number: int
    total: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        parts = text.split("/")
        try:
            number, total = (int(part) for part in parts)
        except ValueError:
            raise BadInput(f"--shard {text!r}: write it as i/n, e.g. 2/4") from None
        if not 1 <= number <= total:
            raise BadInput(f"--shard {text!r}: i must be between 1 and n (1/{total} … {total}/{total})")
        return cls(number, total)

    def __str__(self) -> str:
        return f"{self.number}/{self.total}"
