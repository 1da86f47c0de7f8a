"""Bad input anywhere: exit code 2, one line naming the problem and the fix, never a traceback, nothing lost."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import assert_usage_error, run_cli


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "run"
    done = run_cli("audit", "--frameworks", "numpy", "--dtypes", "float32", "--families", "seed", "--out", str(out),
                   "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def _case_file(tmp: Path, content: str | bytes) -> str:
    file = tmp / "cases.json"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(file)


def _oversized(tmp: Path) -> str:
    file = tmp / "huge.json"
    with open(file, "wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: 65 MiB on paper, nothing on disk
    return str(file)


def _copy(good: Path, tmp: Path, damage: Callable[[Path], None]) -> str:
    copy = tmp / "damaged"
    shutil.copytree(good, copy)
    damage(copy)
    return str(copy)


ONE = {"name": "a", "input_form": "logits", "x": [0.0], "y": [1.0]}
# (what is wrong, how to make the arguments from (good run, temporary folder), what the message must say)
TABLE: list[tuple[str, Callable[[Path, Path], list[str]], str]] = [
    ("unknown framework", lambda g, t: ["audit", "--frameworks", "pytorch"], "unknown framework 'pytorch'; available"),
    ("unknown dtype", lambda g, t: ["audit", "--dtypes", "float8"], "unknown dtype 'float8'; available"),
    ("unknown device", lambda g, t: ["bench", "--devices", "tpu"], "unknown device 'tpu'; available: cpu, gpu"),
    ("unknown family", lambda g, t: ["audit", "--families", "sead"], "unknown family 'sead'"),
    ("unknown flag", lambda g, t: ["audit", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ("missing case file", lambda g, t: ["audit", "--cases", str(t / "none.json")], "does not exist"),
    ("case file not JSON", lambda g, t: ["audit", "--cases", _case_file(t, "{cases: [")], "not valid JSON"),
    ("case file not UTF-8", lambda g, t: ["audit", "--cases", _case_file(t, b"\xff\xfe{")], "cases.json"),
    ("oversized case file", lambda g, t: ["audit", "--cases", _oversized(t)], "larger than 64 MiB"),
    ("ragged values", lambda g, t: ["audit", "--cases", _case_file(t, json.dumps(
        {"cases": [dict(ONE, x=[[0.0, 1.0], [2.0]])]}))], "ragged nesting"),
    ("case without y", lambda g, t: ["audit", "--cases", _case_file(t, json.dumps(
        {"cases": [{k: v for k, v in ONE.items() if k != "y"}]}))], "case 'a': missing field 'y'"),
    ("duplicate case names", lambda g, t: ["audit", "--cases", _case_file(t, json.dumps({"cases": [ONE, ONE]}))],
     "'a'"),
    ("not a number", lambda g, t: ["audit", "--cases", _case_file(t, json.dumps(
        {"cases": [dict(ONE, x=["zero"])]}))], "'zero' is not a number"),
    ("output folder exists", lambda g, t: ["audit", "--families", "seed", "--out", str(g)], "already exists"),
    ("output folder unwritable", lambda g, t: ["audit", "--frameworks", "numpy", "--families", "seed", "--out",
                                               "/proc/bce-run"], "cannot create output folder"),
    ("report: no run folder", lambda g, t: ["report", str(t / "nowhere")], "is not a run folder"),
    ("report: corrupt meta.json", lambda g, t: ["report", _copy(g, t, lambda c: (c / "meta.json").write_text("{"))],
     "is corrupt (not JSON)"),
    ("report: corrupt table", lambda g, t: ["report", _copy(g, t, lambda c: (c / "conformance.parquet").write_bytes(
        b"not parquet"))], "is corrupt"),
    ("report: unfinished run", lambda g, t: ["report", _copy(g, t, lambda c: (c / "conformance.parquet").unlink())],
     "has neither conformance.parquet nor bench.parquet"),
    ("compare: corrupt run", lambda g, t: ["compare", str(g), _copy(g, t, lambda c: (c / "meta.json").write_text(
        "[]"))], "is corrupt (not a JSON object)"),
    ("history: not a folder", lambda g, t: ["history", str(g / "meta.json")], "is not a folder of runs"),
    ("resume: complete run", lambda g, t: ["audit", "--resume", str(g)], "is complete already"),
    ("resume: no run folder", lambda g, t: ["audit", "--resume", str(t / "nowhere")], "is not a run folder"),
    ("resume with other flags", lambda g, t: ["audit", "--resume", str(g), "--dtypes", "float32"],
     "leave out --dtypes"),
    ("bench resume with other flags", lambda g, t: ["bench", "--resume", str(g), "--processes", "2", "--seed", "1"],
     "leave out --processes, --seed"),
    ("resume with a seed", lambda g, t: ["audit", "--resume", str(g), "--seed", "0"], "leave out --seed"),
    ("repro: unknown row", lambda g, t: ["repro", str(g), "0123456789abcdef"], "no row '0123456789abcdef'"),
    ("bad shard", lambda g, t: ["audit", "--shard", "5/4"], "between 1 and n"),
    ("bad memory limit", lambda g, t: ["audit", "--memory-limit", "-1"], "give a positive number of GiB"),
    ("no workers", lambda g, t: ["audit", "--jobs", "0"], "--jobs 0: give 1 or more framework workers"),
]


@pytest.mark.parametrize(("what", "make", "fragment"), TABLE, ids=[row[0] for row in TABLE])
def test_bad_input_is_one_line_and_exit_2(good_run: Path, tmp_path: Path, what: str,
                                          make: Callable[[Path, Path], list[str]], fragment: str) -> None:
    before = sorted(p.name for p in good_run.iterdir())
    assert_usage_error(run_cli(*make(good_run, tmp_path)), fragment)
    assert sorted(p.name for p in good_run.iterdir()) == before  # nothing lost or added


def test_a_shape_mismatch_is_a_case_not_a_malformed_file(tmp_path: Path) -> None:
    cases = _case_file(tmp_path, json.dumps({"cases": [dict(ONE, x=[0.0, 1.0], y=[1.0])]}))
    done = run_cli("audit", "--frameworks", "numpy", "--dtypes", "float32", "--cases", cases, "--out",
                   str(tmp_path / "run"), "--quiet")
    assert done.returncode == 0, done.stderr
