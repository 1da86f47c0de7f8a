"""The plan of the house, as checks that fail: functions short enough to read in one screen, a small top of
`harness/` with every other capability in a room, and every room named in the README's layout paragraph.
(Complexity is ruff's C90 and the import layers are import-linter's, both in tox's lint env.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("harness", "implementations", "cases", "reports")
MAX_FUNCTION_LINES = 80
MAX_TOP_MODULES = 10


def _functions() -> list[tuple[str, int]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                    found.append((where, (node.end_lineno or node.lineno) - node.lineno + 1))
    return found


def test_no_function_is_longer_than_a_screen() -> None:
    functions = _functions()
    assert len(functions) > 300  # the walk found the code
    long = [f"{where} ({lines} lines)" for where, lines in functions if lines > MAX_FUNCTION_LINES]
    assert long == [], f"over {MAX_FUNCTION_LINES} lines: {long}"


def _rooms() -> list[Path]:
    return sorted(p for p in (ROOT / "harness").iterdir() if (p / "__init__.py").is_file())


def test_the_top_of_harness_is_small_and_the_rest_is_in_rooms() -> None:
    top = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    assert {"__init__.py", "__main__.py", "api.py", "cli.py"} <= set(top)
    assert {p.name for p in _rooms()} >= {"verdict", "conformance", "benchmark", "store", "workers"}


@pytest.mark.parametrize("room", [p.name for p in _rooms()])
def test_the_readme_names_every_room(room: str) -> None:
    layout = (ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[-1]
    assert f"harness/{room}/" in layout, f"README's layout paragraph does not name harness/{room}/"
