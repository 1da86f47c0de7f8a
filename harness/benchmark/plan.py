"""The plan of a benchmark: every timed configuration (implementation × mode × direction × device × dtype × size),
the bandwidth read beside each framework's, and the split of the groups between shards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from harness.store.schema import Shard
from implementations import DIRECTIONS, Adapter

__all__ = ["KERNEL", "BenchConfig", "Group", "KernelConfig", "ReadConfig", "bench_configs", "group_of", "shard_bench"]

Group = tuple[str, str, int]  # (device, dtype, n): what is timed side by side; ratios are taken within one


class BenchConfig(NamedTuple):
    """One timed configuration: an implementation in one mode, direction, device, dtype and size."""

    framework: str
    impl: str
    input_form: str
    mode: str
    direction: str
    device: str
    dtype: str
    n: int

    def label(self) -> str:
        return f"{self.impl} [{self.mode}] {self.direction} {self.device} {self.dtype} n={self.n:g}"


def bench_configs(adapters: dict[str, type[Adapter]], impls: Sequence[str] | None, modes: Sequence[str] | None,
                  directions: Sequence[str] = DIRECTIONS, devices: Sequence[str] = ("cpu",),
                  dtypes: Sequence[str] = ("float32",), sizes: Sequence[int] = (1000,)) -> list[BenchConfig]:
    """Every configuration to time, grouped by (device, dtype, size), smallest size first.

    `impls`: implementation ids, or None for each framework's default (its first logits implementation: the
    framework's own API). `modes`: mode names, "compiled" for every compiled path, or None for all of them.
    """
    configs: list[BenchConfig] = []
    for device in devices:
        for dtype in dtypes:
            for n in sorted(sizes):
                for name, adapter in adapters.items():
                    chosen = [i for i in adapter.implementations if i.impl in impls] if impls is not None else [
                        next(i for i in adapter.implementations if i.input_form == "logits")]
                    for impl in chosen:
                        for mode in adapter.modes:
                            wanted = (modes is None or mode in modes
                                      or ("compiled" in modes and mode != "eager"))
                            if wanted:
                                configs.extend(BenchConfig(name, impl.impl, impl.input_form, mode, direction,
                                                           device, dtype, n) for direction in directions)
    return configs



def shard_bench(configs: Sequence[BenchConfig], shard: Shard | None) -> list[BenchConfig]:
    """The configurations of one shard: whole (device, dtype, size) groups, since ratios to the fastest are
    taken within a group, dealt round robin."""
    if shard is None:
        return list(configs)
    groups = list(dict.fromkeys(group_of(c) for c in configs))
    chosen = {group for rank, group in enumerate(groups) if rank % shard.total == shard.number - 1}
    return [c for c in configs if group_of(c) in chosen]


class ReadConfig(NamedTuple):
    """A framework's STREAM-style read of a group's bytes: the bandwidth baseline of its roofline."""

    framework: str
    device: str
    dtype: str
    n: int

    def label(self) -> str:
        return f"{self.framework} read {self.device} n={self.n:g}"


KERNEL = "kernel"  # the team of worker processes that times the speed-of-light kernel, beside the frameworks'


class KernelConfig(NamedTuple):
    """The speed-of-light kernel (harness/benchmark/kernel.c) on a CPU group's bytes in one direction: the compute
    limit of the group's rows in that direction."""

    device: str
    dtype: str
    n: int
    direction: str
    framework: str = KERNEL

    def label(self) -> str:
        return f"speed-of-light kernel {self.direction} {self.device} {self.dtype} n={self.n:g}"


def group_of(config: BenchConfig | ReadConfig | KernelConfig) -> Group:
    return (config.device, config.dtype, config.n)
