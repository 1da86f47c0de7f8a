"""The benchmark's plan: each framework's own logits API by default, every mode or the compiled ones, whole
(device, dtype, size) groups per shard."""

from __future__ import annotations

from harness.benchmark.plan import ReadConfig, bench_configs, group_of, shard_bench
from harness.store.schema import Shard
from implementations import adapter_classes

ADAPTERS = {name: adapter_classes()[name] for name in ("numpy", "torch", "jax")}


def test_the_default_is_each_framework_s_own_logits_api_in_every_mode() -> None:
    configs = bench_configs(ADAPTERS, None, None, sizes=(1000,))
    assert {(c.impl, c.mode) for c in configs} == {("numpy.logits", "eager"), ("torch.logits", "eager"),
                                                  ("torch.logits", "torch.compile"), ("jax.logits", "eager"),
                                                  ("jax.logits", "jax.jit")}
    assert len(configs) == 5 * 2  # both directions
    compiled = bench_configs(ADAPTERS, ["torch.lse_formula", "jax.probs"], ["compiled"], sizes=(10,))
    assert {(c.impl, c.mode, c.input_form) for c in compiled} == {("torch.lse_formula", "torch.compile", "logits"),
                                                                ("jax.probs", "jax.jit", "probs")}


def test_groups_are_ordered_smallest_first_and_shards_keep_them_whole() -> None:
    configs = bench_configs(ADAPTERS, None, ["eager"], sizes=(10_000, 100), dtypes=("float32", "bfloat16"))
    assert [group_of(c) for c in configs][:1] == [("cpu", "float32", 100)]
    parts = [shard_bench(configs, Shard(i, 3)) for i in (1, 2, 3)]
    groups = [{group_of(c) for c in part} for part in parts]
    assert sum(len(g) for g in groups) == 4 and set().union(*groups) == {group_of(c) for c in configs}
    assert sum(len(part) for part in parts) == len(configs)


def test_a_read_belongs_to_its_group() -> None:
    read = ReadConfig("torch", "cpu", "float32", 1000)
    assert group_of(read) == ("cpu", "float32", 1000) and read.label() == "torch read cpu n=1000"
