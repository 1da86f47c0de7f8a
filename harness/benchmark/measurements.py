"""What a benchmark has measured so far, by configuration: its preparation, its blocks (sweep by sweep) or why it
could not be timed, the framework's own timer beside them, and per group whether it was re-timed and what stayed
disturbed; rebuilt from the journal of an interrupted run."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.benchmark.messages import Failed, OwnTimed, Prepared, Timed
from harness.benchmark.plan import BenchConfig, Group, KernelConfig, ReadConfig, group_of

__all__ = ["Key", "Measurements", "group_keys", "groups_of", "journal_what", "kernel_keys"]

Key = BenchConfig | ReadConfig | KernelConfig


def kernel_keys(group: Group, members: Sequence[BenchConfig]) -> list[KernelConfig]:
    """The speed-of-light kernel in each direction the group times, on the CPU (on a GPU the limit is the
    memory floor)."""
    if group[0] != "cpu":
        return []
    return [KernelConfig(*group, direction) for direction in dict.fromkeys(c.direction for c in members)]


def group_keys(group: Group, members: Sequence[BenchConfig]) -> list[Key]:
    """What a (device, dtype, size) group times: its configurations, the read of the bytes by each framework that
    has one of them (a framework without the group's device has nothing to read there either), and the kernel."""
    reads = [ReadConfig(name, *group) for name in dict.fromkeys(c.framework for c in members)]
    return [*members, *reads, *kernel_keys(group, members)]


def journal_key(record: dict[str, Any]) -> Key:
    if "read" in record:
        return ReadConfig(*record["read"])
    if "kernel" in record:
        return KernelConfig(*record["kernel"])
    return BenchConfig(**{name: record[name] for name in BenchConfig._fields})


def journal_what(key: Key) -> dict[str, Any]:
    match key:
        case ReadConfig():
            return {"read": list(key)}
        case KernelConfig():
            return {"kernel": list(key)}
    return key._asdict()


@dataclass
class Measurements:
    prepared: dict[Key, Prepared] = field(default_factory=dict)
    problems: dict[Key, tuple[str, str]] = field(default_factory=dict)  # (error type, message)
    blocks: dict[Key, list[Timed]] = field(default_factory=lambda: defaultdict(list))  # in sweep order
    earlier: dict[Key, list[Timed]] = field(default_factory=dict)  # the first pass of what was timed again
    own: dict[Key, list[OwnTimed]] = field(default_factory=lambda: defaultdict(list))  # the framework's own timer
    own_problems: dict[Key, str] = field(default_factory=dict)  # why the framework's own timer could not time it
    checked: dict[Group, list[str]] = field(default_factory=dict)  # group → why it was re-timed ([] if it was not)
    unstable: dict[Key, str] = field(default_factory=dict)  # what stayed disturbed after the re-time, and why

    @classmethod
    def replayed(cls, records: Sequence[dict[str, Any]], sweeps: int) -> Measurements:
        """What an earlier run journaled; a later record of the same key wins (a group timed again replaces what
        it had)."""
        found = cls()
        by_sweep: dict[tuple[Key, int], dict[int, Timed]] = defaultdict(dict)  # by (key, pass)
        own: dict[Key, dict[int, OwnTimed]] = defaultdict(dict)
        for record in records:
            if record.get("event") == "checked":
                found.check(tuple(record["group"]), list(record["retimed"]),
                            {journal_key(item): str(item["reason"]) for item in record["unstable"]})
                continue
            key = journal_key(record)
            if "error" in record:
                found.problems[key] = (str(record["error"][0]), str(record["error"][1]))
            elif record.get("event") == "prepared":
                found.prepared[key] = Prepared(**{name: record[name] for name in Prepared.__dataclass_fields__
                                                  if name in record})
                found.problems.pop(key, None)
                by_sweep[(key, 1)], by_sweep[(key, 2)] = {}, {}
            elif record.get("event") == "block":
                timed = Timed(int(record["iterations"]), tuple(record["data"]))
                by_sweep[(key, int(record.get("pass", 1)))][int(record["sweep"])] = timed
            elif record.get("event") == "crosscheck" and "own_error" in record:
                found.own_problems[key] = str(record["own_error"])
            elif record.get("event") == "crosscheck":
                own[key][int(record["sweep"])] = OwnTimed(str(record["timer"]), float(record["median_s"]))
        for (key, number), in_pass in sorted(by_sweep.items(), key=lambda item: item[0][1]):
            if number == 2 and in_pass:
                found.earlier[key] = found.blocks[key]
            if number == 1 or in_pass:
                found.blocks[key] = [in_pass[s] for s in range(sweeps) if s in in_pass]
        for key, checks in own.items():
            found.own[key] = [checks[s] for s in sorted(checks)]
        return found

    def finished(self, group: Group, members: Sequence[BenchConfig], sweeps: int) -> bool:
        """Whether the group's stability was decided, every key of it either timed in every sweep or not
        timeable."""
        return group in self.checked and all(
            key in self.problems or (key in self.prepared and len(self.blocks.get(key, [])) == sweeps)
            for key in group_keys(group, members))

    def forget(self, keys: Sequence[Key]) -> None:
        """A group timed again starts clean."""
        for key in keys:
            self.prepared.pop(key, None)
            self.problems.pop(key, None)
            self.unstable.pop(key, None)
        self.restart(keys)
        for group in {group_of(key) for key in keys}:
            self.checked.pop(group, None)

    def restart(self, keys: Sequence[Key]) -> None:
        """Keys timed from the start again drop their blocks and cross-checks."""
        for key in keys:
            self.blocks.pop(key, None)
            self.earlier.pop(key, None)
            self.own.pop(key, None)
            self.own_problems.pop(key, None)

    def again(self, keys: Sequence[Key]) -> None:
        """Keys timed in a second pass keep their first pass's blocks apart (their peers' ratios were taken
        against them) and drop their cross-checks."""
        for key in keys:
            self.earlier[key] = self.blocks.pop(key, [])
            self.own.pop(key, None)
            self.own_problems.pop(key, None)

    def check(self, group: Group, retimed: list[str], unstable: dict[Key, str]) -> None:
        """The group's stability is decided: why it was re-timed, and what stayed disturbed."""
        self.checked[group] = retimed
        self.unstable.update(unstable)

    def note(self, key: Key, reply: Prepared | Timed | OwnTimed | Failed) -> bool:
        """Keep a reply; True when it is a result."""
        match reply:
            case Failed(error_type=error_type, message=message):
                self.problems[key] = (error_type, message)
                return False
            case Prepared():
                self.prepared[key] = reply
            case Timed():
                self.blocks[key].append(reply)
            case OwnTimed():
                self.own[key].append(reply)
        return True

    def data(self, key: Key) -> list[float]:
        """Every round's seconds per call, sweep after sweep."""
        return [t for block in self.blocks.get(key, []) for t in block.data]

    def timed_reads(self) -> list[ReadConfig]:
        return [key for key in self.prepared
                if isinstance(key, ReadConfig) and key not in self.problems and self.blocks.get(key)]

    def timed_kernels(self) -> list[KernelConfig]:
        return [key for key in self.prepared
                if isinstance(key, KernelConfig) and key not in self.problems and self.blocks.get(key)]

    def median(self, key: Key) -> float:
        return float(statistics.median(self.data(key)))

    def baselines(self) -> list[dict[str, Any]]:
        """Per (device, dtype, n): each framework's read of the bytes (the best is the baseline)."""
        return [{"framework": read.framework, "device": read.device, "dtype": read.dtype, "n": read.n,
                 "median_s": self.median(read), "rounds": len(self.data(read))}
                for read in self.timed_reads()]

    def kernels(self) -> list[dict[str, Any]]:
        """Per (device, dtype, n, direction): the speed-of-light kernel's time and accuracy, or why it has none."""
        timed = [{**key._asdict(), "median_s": self.median(key), "rounds": len(self.data(key)),
                  "accuracy": self.prepared[key].accuracy} for key in self.timed_kernels()]
        failed = [{**key._asdict(), "error": list(problem)} for key, problem in self.problems.items()
                  if isinstance(key, KernelConfig)]
        return [{k: v for k, v in entry.items() if k != "framework"} for entry in timed + failed]


def groups_of(configs: Sequence[BenchConfig]) -> dict[Group, list[BenchConfig]]:
    groups: dict[Group, list[BenchConfig]] = defaultdict(list)
    for config in configs:
        groups[group_of(config)].append(config)
    return dict(groups)
