"""The CLI in this process: its parser, its one-line errors for bad usage (exit 2), and `list` from the device
cache (subprocess runs of every command are in e2e/)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_usage_error, run_main


@pytest.mark.parametrize(("args", "fragment"), [
    (["audit", "--frameworks", "pytorch"], "unknown framework 'pytorch'; available: numpy, torch"),
    (["audit", "--dtypes", "float8"], "unknown dtype 'float8'; available: float64"),
    (["audit", "--devices", "tpu"], "unknown device 'tpu'; available: cpu, gpu"),
    (["audit", "--families", "sead"], "unknown family 'sead'"),
    (["audit", "--seed", "x"], "argument --seed"),
    (["bench", "--sizes", "1.5"], "is not an integer"),
    (["bench", "--processes", "11"], "--processes must be from 1 to the number of sweeps (10)"),
    (["compare", "a", "b", "--min-effect", "20"], "--min-effect 20.0: give a fraction such as 0.1"),
    (["audit", "--cases", "no-such-file.json"], "does not exist"),
    (["audit", "--bogus"], "unrecognized arguments: --bogus"),
    (["report", "no-such-run"], "is not a run folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_usage_is_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    assert_usage_error(run_main(*args), fragment)


def test_help_names_the_exit_codes() -> None:
    done = run_main("--help")
    assert done.returncode == 0 and "1 a gate asked for failed" in " ".join(done.stdout.split())


def test_list_reads_the_adapters_and_the_device_cache() -> None:
    done = run_main("list", "--json")
    listing = json.loads(done.stdout)
    numpy = listing["frameworks"]["numpy"]
    assert numpy["installed"] and numpy["devices"] == ["cpu"] and numpy["problem"] == ""
    assert numpy["implementations"] == ["numpy.logits", "numpy.lse_formula", "numpy.probs"]
    assert listing["dtypes"] == ["float64", "float32", "float16", "bfloat16"] and "seed" in listing["families"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["fuzz", "--impls", "torch.softmax2"], "is there for an identity's other side"),
    (["fuzz", "--impls", "torch.logitz"], "unknown implementation 'torch.logitz'"),
    (["fuzz", "--max-examples", "0"], "--max-examples 0: give a positive integer"),
    (["fuzz", "--budget", "-1"], "--budget -1: give a positive number"),
    (["fuzz", "--quantities", "grad3"], "unknown quantity 'grad3'; available: loss, grad, grad_fwd"),
    (["fuzz", "--modes", "xla"], "unknown mode 'xla'"),
])
def test_bad_fuzz_usage_is_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    assert_usage_error(run_main(*args), fragment)
