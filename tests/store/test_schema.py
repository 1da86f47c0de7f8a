"""The one schema: row ids that never change, the columns in their order, cell keys by name, shards."""

from __future__ import annotations

import pytest

from cases import BadInput
from harness.store.schema import (
    BENCH_COLUMNS,
    CONFORMANCE_COLUMNS,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    CellKey,
    ConformanceRow,
    Shard,
    bench_row_id,
    row_id,
)


def test_row_ids_are_the_ones_earlier_runs_stored() -> None:
    # hashes of the row keys as every run since the first has written them: compare/merge/history match on them
    assert row_id("torch.logits", "seed_logits", "float32", "cpu", "mean", "loss") == "841699b1dd8e4539"
    assert row_id("jax.logits", "large_logits", "bfloat16", "gpu", "none", "grad", "path", "jax.jit") == (
        "7de3f211dab0561f")
    assert bench_row_id("torch.logits", "eager", "forward", "cpu", "float32", "1000") == "a9f056d6d7a99294"


def test_the_row_record_is_the_table_s_columns_in_order() -> None:
    assert CONFORMANCE_COLUMNS[:6] == ["run_id", "row_id", "framework", "framework_version", "impl", "api"]
    assert CONFORMANCE_COLUMNS[-5:] == ["got", "expected", "error_type", "error_message", "failures"]
    assert len(CONFORMANCE_COLUMNS) == 32 and len(set(CONFORMANCE_COLUMNS)) == 32
    row = ConformanceRow(impl="torch.logits", case="seed_logits", dtype="float32", device="cpu", reduction="mean",
                         quantity="loss").with_id()
    assert row.row_id == "841699b1dd8e4539"
    assert list(row.record()) == CONFORMANCE_COLUMNS and row.record()["check"] == "reference"
    assert "processes" in BENCH_COLUMNS and BENCH_COLUMNS[:2] == ["run_id", "row_id"]
    assert SCHEMA_VERSION in READABLE_SCHEMA_VERSIONS


def test_a_cell_key_is_read_from_a_row_by_name() -> None:
    record = ConformanceRow(impl="numpy.probs", case="c", dtype="float16", device="cpu", reduction="sum",
                            mode="eager", check="batch").record()
    assert CellKey.of(record) == CellKey("numpy.probs", "c", "float16", "cpu", "sum", "eager", "batch")


@pytest.mark.parametrize(("text", "fragment"), [("2", "write it as i/n"), ("0/3", "between 1 and n"),
                                                ("4/3", "between 1 and n"), ("a/b", "write it as i/n")])
def test_a_bad_shard_is_bad_input(text: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        Shard.parse(text)


def test_a_shard_reads_and_prints_as_i_of_n() -> None:
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
