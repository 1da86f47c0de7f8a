"""report.html: its content, the escaping of user strings, and how it renders in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness import bench
from harness.benchmark.timing import BlockOptions
from reports.html import STATUS_COLOURS
from tests.conftest import run_cli

HOSTILE = "<script>alert('x')</script>"
CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if (found := shutil.which(name))), None)
# In CI (.ci/run installs Chromium from the OS packages) a missing browser is a failure, not a skip.
needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                   reason="no Chromium here (apt-get install chromium)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit of NumPy on the seed case and a hostile-named case, and a benchmark in the same folder."""
    root = tmp_path_factory.mktemp("html")
    cases = root / "cases.json"
    cases.write_text(json.dumps({"cases": [
        {"name": HOSTILE, "input_form": "logits", "x": [0.0, -30.0, "inf"], "y": [1, 0, 0]},
        {"name": "seed_like", "input_form": "probs", "x": [0.5, 0.25], "y": [1, 0]},
    ]}))
    out = root / "run"
    done = run_cli("audit", "--frameworks", "numpy,torch", "--dtypes", "float32,float16", "--cases", str(cases),
                   "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    bench(frameworks=["numpy"], sizes=[1000, 10000], sweeps=2, threads=1, out=out,
          options=BlockOptions(min_rounds=2, max_time=0.005, min_time=1e-4))
    return out


def test_page_is_self_contained_and_complete(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    for section in ("findings", "matrix", "status", "heatmap", "finding-rows", "discrepancies", "speed",
                    "environment"):
        assert f"id='{section}'" in page
    assert page.index("id='findings'") < page.index("id='status'")  # the findings first
    assert not re.search(r"(src|href)=['\"]?//|src=['\"]?https?:|<link", page)  # nothing to fetch: opens offline
    cards = re.findall(r"<div class='card' id='(f-[0-9a-f]{12})'", page)
    assert cards and all(f"href='#rows-{card[2:]}'" in page and f"id='rows-{card[2:]}'" in page for card in cards)
    # the heat map, one time-versus-size figure (cpu, float32) and the ratio/roofline/compile bars
    assert page.count("<img class='plot'") == 3 and page.count("src='data:image/png;base64,") == 3
    # every status cell with findings links to its part of the discrepancy list
    links = set(re.findall(r"href='#(d-[^']+)'", page))
    assert links and all(f"id='{anchor}'" in page for anchor in links)
    assert "python -m harness repro" in page


def test_user_strings_are_escaped(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # ours: it counts the plots that loaded


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "Chromium is missing: .ci/run installs it (apt-get install chromium)"
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def _console(stderr: str) -> list[str]:
    """What the page wrote to the console (Chromium logs every message, errors included, as CONSOLE lines)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


@needs_browser
def test_the_console_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    messages = _console(_chromium("--dump-dom", broken.as_uri()).stderr)
    assert any("Uncaught ReferenceError" in message for message in messages)


@needs_browser
def test_renders_in_a_browser_with_every_plot_and_no_console_message(run_dir: Path) -> None:
    done = _chromium("--dump-dom", (run_dir / "report.html").as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None
    assert 'data-plots="3"' in body.group(0) and 'data-plots-loaded="3"' in body.group(0)  # decoded and drawn


def _colour(status: str) -> tuple[int, ...]:
    return tuple(int(STATUS_COLOURS[status][i:i + 2], 16) for i in (1, 3, 5))


@needs_browser
def test_the_first_screen_shows_the_worst_findings(run_dir: Path, tmp_path: Path) -> None:
    """1280 × 900 pixels: the finding cards, each with its status colour down its left edge."""
    from PIL import Image

    shot = tmp_path / "first.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,900", (run_dir / "report.html").as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    painted = sum(int((pixels == _colour(status)).all(axis=1).sum()) for status in ("nonfinite", "fail"))
    assert painted > 6 * 60, painted  # card borders, 6 px wide, at least one card's height


@needs_browser
def test_screenshot_shows_the_status_matrix_and_plots(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,5000", (run_dir / "report.html").as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (5000, 1280, 3)
    colours = {tuple(int(STATUS_COLOURS[s][i:i + 2], 16) for i in (1, 3, 5)) for s in ("pass", "nonfinite")}
    pixels = image.reshape(-1, 3)
    for colour in colours:  # status cells painted: a pass cell and the non-finite ones (x = inf)
        assert (pixels == colour).all(axis=1).sum() > 500, colour
    assert len(np.unique(pixels[::7], axis=0)) > 200  # the heat map's colour scale, antialiased plots: not blank
