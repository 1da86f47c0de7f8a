"""What a benchmark has measured so far, by configuration: its preparation, its blocks (sweep by sweep) or why it
could not be timed; rebuilt from the journal of an interrupted run."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.benchmark.messages import Failed, Prepared, Timed
from harness.benchmark.plan import BenchConfig, Group, ReadConfig, group_of

__all__ = ["Key", "Measurements", "group_keys", "groups_of", "journal_what"]

Key = BenchConfig | ReadConfig


def group_keys(group: Group, members: Sequence[BenchConfig]) -> list[Key]:
    """What a (device, dtype, size) group times: its configurations, and the read of the bytes by each framework
    that has one of them (a framework without the group's device has nothing to read there either)."""
    return [*members, *(ReadConfig(name, *group) for name in dict.fromkeys(c.framework for c in members))]


def journal_key(record: dict[str, Any]) -> Key:
    if "read" in record:
        return ReadConfig(*record["read"])
    return BenchConfig(**{name: record[name] for name in BenchConfig._fields})


def journal_what(key: Key) -> dict[str, Any]:
    return {"read": list(key)} if isinstance(key, ReadConfig) else key._asdict()


@dataclass
class Measurements:
    prepared: dict[Key, Prepared] = field(default_factory=dict)
    problems: dict[Key, tuple[str, str]] = field(default_factory=dict)  # (error type, message)
    blocks: dict[Key, list[Timed]] = field(default_factory=lambda: defaultdict(list))  # in sweep order

    @classmethod
    def replayed(cls, records: Sequence[dict[str, Any]], sweeps: int) -> Measurements:
        """What an earlier run journaled; a later record of the same key wins (a group timed again replaces what
        it had)."""
        found = cls()
        by_sweep: dict[Key, dict[int, Timed]] = defaultdict(dict)
        for record in records:
            key = journal_key(record)
            if "error" in record:
                found.problems[key] = (str(record["error"][0]), str(record["error"][1]))
            elif record.get("event") == "prepared":
                found.prepared[key] = Prepared(**{name: record[name] for name in Prepared.__dataclass_fields__
                                                  if name in record})
                found.problems.pop(key, None)
                by_sweep[key] = {}
            elif record.get("event") == "block":
                by_sweep[key][int(record["sweep"])] = Timed(int(record["iterations"]), tuple(record["data"]))
        for key, timed in by_sweep.items():
            found.blocks[key] = [timed[s] for s in range(sweeps) if s in timed]
        return found

    def finished(self, group: Group, members: Sequence[BenchConfig], sweeps: int) -> bool:
        """Whether every key of the group was either timed in every sweep or could not be timed."""
        return all(key in self.problems or (key in self.prepared and len(self.blocks.get(key, [])) == sweeps)
                   for key in group_keys(group, members))

    def forget(self, keys: Sequence[Key]) -> None:
        """A group timed again starts clean."""
        for key in keys:
            self.prepared.pop(key, None)
            self.problems.pop(key, None)
            self.blocks.pop(key, None)

    def note(self, key: Key, reply: Prepared | Timed | Failed) -> bool:
        """Keep a reply; True when it is a result."""
        match reply:
            case Failed(error_type=error_type, message=message):
                self.problems[key] = (error_type, message)
                return False
            case Prepared():
                self.prepared[key] = reply
            case Timed():
                self.blocks[key].append(reply)
        return True

    def data(self, key: Key) -> list[float]:
        """Every round's seconds per call, sweep after sweep."""
        return [t for block in self.blocks.get(key, []) for t in block.data]

    def timed_reads(self) -> list[ReadConfig]:
        return [key for key in self.prepared
                if isinstance(key, ReadConfig) and key not in self.problems and self.blocks.get(key)]

    def baselines(self) -> list[dict[str, Any]]:
        """Per (device, dtype, n): each framework's read of the bytes (the best is the baseline)."""
        return [{"framework": read.framework, "device": read.device, "dtype": read.dtype, "n": read.n,
                 "median_s": float(statistics.median(self.data(read))), "rounds": len(self.data(read))}
                for read in self.timed_reads()]


def groups_of(configs: Sequence[BenchConfig]) -> dict[Group, list[BenchConfig]]:
    groups: dict[Group, list[BenchConfig]] = defaultdict(list)
    for config in configs:
        groups[group_of(config)].append(config)
    return dict(groups)
