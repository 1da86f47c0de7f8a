"""Every user choice is checked before work starts: one UsageError line naming the value and the fix."""

from __future__ import annotations

import os

import pytest

from cases import BadInput
from harness import options as choice
from implementations import adapter_classes


def test_names_are_checked_against_the_known_ones() -> None:
    assert choice.choose("dtype", None, ["float64", "float32"]) == ["float64", "float32"]
    assert choice.choose("dtype", [" float32", "float32", ""], ["float64", "float32"]) == ["float32"]
    with pytest.raises(choice.UsageError, match="unknown dtype 'float8'; available: float64, float32"):
        choice.choose("dtype", ["float8"], ["float64", "float32"])
    with pytest.raises(choice.UsageError, match="no dtype given"):
        choice.choose("dtype", [" "], ["float64"])


def test_devices_default_to_the_cpu() -> None:
    assert choice.chosen_devices(None) == ["cpu"] and choice.chosen_devices(["gpu", "cpu"]) == ["gpu", "cpu"]
    with pytest.raises(choice.UsageError, match="unknown device 'tpu'; available: cpu, gpu"):
        choice.chosen_devices(["tpu"])


def test_a_framework_named_explicitly_must_be_there() -> None:
    assert list(choice.resolve_frameworks(None)) == list(adapter_classes())
    assert list(choice.resolve_frameworks(["numpy"])) == ["numpy"]
    with pytest.raises(BadInput, match="unknown framework 'pytorch'"):
        choice.resolve_frameworks(["pytorch"])


def test_counts_and_limits() -> None:
    with pytest.raises(choice.UsageError, match="--jobs 0"):
        choice.jobs(0)
    with pytest.raises(choice.UsageError, match="--memory-limit -1"):
        choice.memory_limit(-1, 2)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert choice.memory_limit(None, 2) == round(total / 3, 1) and choice.memory_limit(1.5, 2) == 1.5
    assert choice.resume_limits({"jobs": 3, "timeout_s": 5.0, "memory_limit_gib": 1.5}) == (3, 5.0, 1.5)
    assert choice.resume_limits({"jobs": 3}, 1, 30.0, 2.0) == (1, 30.0, 2.0)
    assert choice.processes(None, 10, 3) == 3 and choice.processes(None, 2, 3) == 2
    with pytest.raises(choice.UsageError, match="--processes must be from 1 to the number of sweeps"):
        choice.processes(4, 3, 3)
    with pytest.raises(choice.UsageError, match="--sweeps must be at least 2"):
        choice.processes(None, 1, 3)
    assert choice.chosen_sizes([100, 10, 100]) == [10, 100]
    with pytest.raises(choice.UsageError, match="--sizes must be positive"):
        choice.chosen_sizes([0])
    threads, cpus = choice.chosen_threads(1)
    assert threads == 1 and len(cpus) == 1
    with pytest.raises(choice.UsageError, match="--threads 999"):
        choice.chosen_threads(999)


def test_cases_come_from_one_source() -> None:
    assert [c.name for c in choice.chosen_cases(None, ["seed"], 0)] == ["seed_logits", "seed_probs"]
    with pytest.raises(choice.UsageError, match="give either --cases or --families"):
        choice.chosen_cases("cases.json", ["seed"], 0)
    with pytest.raises(BadInput, match="does not exist"):
        choice.chosen_cases("no-such-file.json", None, 0)


def test_modes_and_implementations_are_the_adapters() -> None:
    numpy = {"numpy": adapter_classes()["numpy"]}
    assert choice.chosen_modes(numpy, None) is None and choice.chosen_modes(numpy, ["compiled"]) == ["compiled"]
    assert choice.chosen_impls(numpy, ["all"]) == ["numpy.logits", "numpy.lse_formula", "numpy.probs"]
    with pytest.raises(choice.UsageError, match=r"unknown implementation 'torch\.logits'"):
        choice.chosen_impls(numpy, ["torch.logits"])
