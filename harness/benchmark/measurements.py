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
    earlier_own: dict[Key, tuple[list[OwnTimed], str | None]] = field(default_factory=dict)  # and its own timer
    own: dict[Key, list[OwnTimed]] = field(default_factory=lambda: defaultdict(list))  # the framework's own timer
    own_problems: dict[Key, str] = field(default_factory=dict)  # why the framework's own timer could not time it
    decided: dict[Group, list[str]] = field(default_factory=dict)  # group → why it was re-timed ([] if it was not)
    undecided: set[Group] = field(default_factory=set)  # groups resumed from a journal older than the self-check
    unstable: dict[Key, str] = field(default_factory=dict)  # what stayed disturbed after the re-time, and why

    @classmethod
    def replayed(cls, records: Sequence[dict[str, Any]], sweeps: int) -> Measurements:
        """What an earlier run journaled; a later record of the same key wins (a group timed again replaces what
        it had). A second pass's blocks and own-timer checks ("pass": 2) replace the first's, which are kept apart
        as `earlier` as the live run keeps them."""
        found, passes = cls(), _Passes()
        for record in records:
            if record.get("event") == "checked":
                found.decide(tuple(record["group"]), list(record["retimed"]),
                             {journal_key(item): str(item["reason"]) for item in record["unstable"]})
            elif record.get("event") == "restored":
                passes.restored[journal_key(record)] = str(record["reason"])
            else:
                found._replay(journal_key(record), record, passes)
        passes.settle(found, sweeps)
        if records and not any("kernel" in r or r.get("event") in ("crosscheck", "checked") for r in records):
            found.undecided = {group_of(key) for key in found.prepared}  # a journal older than the self-check
        return found

    def _replay(self, key: Key, record: dict[str, Any], passes: _Passes) -> None:
        number = int(record.get("pass", 1))
        if "error" in record and record.get("event") != "crosscheck":
            self.problems[key] = (str(record["error"][0]), str(record["error"][1]))
        elif record.get("event") == "prepared":
            self.prepared[key] = Prepared(**{name: record[name] for name in Prepared.__dataclass_fields__
                                             if name in record})
            self.problems.pop(key, None)
            passes.forget(key)
        elif record.get("event") == "block":
            passes.blocks[(key, number)][int(record["sweep"])] = Timed(int(record["iterations"]),
                                                                       tuple(record["data"]))
        elif record.get("event") == "crosscheck":
            passes.own[(key, number)][int(record["sweep"])] = (
                str(record["own_error"]) if "own_error" in record
                else OwnTimed(str(record["timer"]), float(record["median_s"])))

    def finished(self, group: Group, members: Sequence[BenchConfig], sweeps: int) -> bool:
        """Whether the group's stability was decided, every key of it either timed in every sweep or not
        timeable."""
        keys = group_keys(group, members)
        if group in self.undecided:  # journaled before the kernel and the self-check: what it timed stands
            keys = [key for key in keys if not isinstance(key, KernelConfig)]
        elif group not in self.decided:
            return False
        return all(key in self.problems or (key in self.prepared and len(self.blocks.get(key, [])) == sweeps)
                   for key in keys)

    def forget(self, keys: Sequence[Key]) -> None:
        """A group timed again starts clean."""
        for key in keys:
            self.prepared.pop(key, None)
            self.problems.pop(key, None)
            self.unstable.pop(key, None)
        self.restart(keys)
        for group in {group_of(key) for key in keys}:
            self.decided.pop(group, None)
            self.undecided.discard(group)

    def restart(self, keys: Sequence[Key]) -> None:
        """Keys timed from the start again drop their blocks and cross-checks."""
        for key in keys:
            self.blocks.pop(key, None)
            self.earlier.pop(key, None)
            self.own.pop(key, None)
            self.own_problems.pop(key, None)

    def again(self, keys: Sequence[Key]) -> None:
        """Keys timed in a second pass keep their first pass's blocks and cross-checks apart (their peers'
        ratios were taken against them, and a second pass that fails gives them back)."""
        for key in keys:
            self.earlier[key] = self.blocks.pop(key, [])
            self.earlier_own[key] = (self.own.pop(key, []), self.own_problems.pop(key, None))

    def decide(self, group: Group, retimed: list[str], unstable: dict[Key, str]) -> None:
        """The group's stability is decided: why it was re-timed, and what stayed disturbed."""
        self.decided[group] = retimed
        self.unstable.update(unstable)

    def restore(self, key: Key, why: str) -> None:
        """A key whose second pass could not be completed keeps its first pass (blocks and cross-checks); `why`,
        when not empty, marks it unstable."""
        self.blocks[key] = self.earlier.pop(key, self.blocks.get(key, []))
        own, problem = self.earlier_own.pop(key, (self.own.get(key, []), self.own_problems.get(key)))
        self.own[key] = own
        self.own_problems.pop(key, None)
        if problem is not None:
            self.own_problems[key] = problem
        self.problems.pop(key, None)
        if why:
            self.unstable[key] = why

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


@dataclass
class _Passes:
    """A journal's blocks and own-timer checks by (key, pass) and sweep, while it is read."""

    blocks: dict[tuple[Key, int], dict[int, Timed]] = field(default_factory=lambda: defaultdict(dict))
    own: dict[tuple[Key, int], dict[int, OwnTimed | str]] = field(default_factory=lambda: defaultdict(dict))
    restored: dict[Key, str] = field(default_factory=dict)  # keys whose second pass was given up, and why

    def forget(self, key: Key) -> None:
        """A key prepared again starts clean."""
        self.restored.pop(key, None)
        for number in (1, 2):
            self.blocks.pop((key, number), None)
            self.own.pop((key, number), None)

    def settle(self, found: Measurements, sweeps: int) -> None:
        """Each key's latest pass counts (its first kept as `earlier` when there is a second), and that pass's
        own-timer checks: the values, or the error of one that failed. A key whose second pass was given up
        keeps its first, as the live run restores it."""
        for (key, number), blocks in sorted(self.blocks.items(), key=lambda item: item[0][1]):
            if number == 2 and key in self.restored:
                continue
            if number == 2 and blocks:
                found.earlier[key] = found.blocks.get(key, [])
            if number == 1 or blocks:
                found.blocks[key] = [blocks[s] for s in range(sweeps) if s in blocks]
        for key, why in self.restored.items():
            found.problems.pop(key, None)
            if why:
                found.unstable[key] = why
        for (key, number), checks in self.own.items():
            if number == (2 if key in found.earlier else 1):
                values = [checks[s] for s in sorted(checks)]
                found.own[key] = [value for value in values if isinstance(value, OwnTimed)]
                errors = [value for value in values if isinstance(value, str)]
                if errors:
                    found.own_problems[key] = errors[-1]


def groups_of(configs: Sequence[BenchConfig]) -> dict[Group, list[BenchConfig]]:
    groups: dict[Group, list[BenchConfig]] = defaultdict(list)
    for config in configs:
        groups[group_of(config)].append(config)
    return dict(groups)
