"""Helpers of the browser tests: Debian's Chromium under Playwright, ``pipeline.serve`` in the background, strokes.

    with serving(site_root_artifacts) as url, chromium() as browser:
        page = browser.new_page(); page.goto(url)
    paths = strokes(mnist_digit)                  # pen strokes tracing a 28x28 digit, in its pixel coordinates
    image = render(paths, scale=10, pen=18)       # the same strokes drawn with Pillow, as the page's pad draws them

The network is closed here and Playwright's own browser download does not work, so the tests drive
the distribution's ``chromium`` binary; without it they fail with the command that installs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

CHROMIUM_ARGS = (
    "--no-sandbox",  # tests run as root in a container
    "--disable-gpu",
    "--disable-background-networking",  # the network is closed: no update checks, no component downloads
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
INSTALL = "install Debian's Chromium with `apt-get install chromium` (CI's .ci/run does)"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(f"Chromium is not installed: {INSTALL}", pytrace=False)
    return found


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's Browser) on the system's binary."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -e '.[dev]' (it is a dev dependency)", pytrace=False)
    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serving(artifacts: Path, log: Path) -> Iterator[str]:
    """``python -m pipeline.serve --port 0`` for ``artifacts``/web; yields its URL from its start line."""
    env = os.environ | {"ARTIFACTS": str(artifacts), "PROFILE": "smoke", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline.serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            line = server.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if url is None:
                pytest.fail(f"pipeline.serve did not start: {line!r} {log.read_text()[-500:]}")
            yield url.group(0)
        finally:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()


# classifyPixels on flat [n x 784] pixels -> [[digit, probabilities by digit], ...]
CLASSIFY_ALL = """async (flat) => {
  const out = [];
  for (let i = 0; i < flat.length / 784; i++) {
    const r = await window.mnistEdge.classifyPixels(Float32Array.from(flat.slice(784 * i, 784 * (i + 1))));
    const p = new Array(10);
    for (const [digit, probability] of r.top) p[digit] = probability;
    out.push([r.digit, p]);
  }
  return out;
}"""

# classifyImage on files of the site -> [digit or null (no digit found), ...]
CLASSIFY_FILES = """async (names) => {
  const out = [];
  for (const name of names) {
    const blob = await (await fetch(name)).blob();
    try {
      out.push((await window.mnistEdge.classifyImage(blob)).digit);
    } catch (e) {
      if (e.name !== "PreprocessError") throw e;
      out.push(null);
    }
  }
  return out;
}"""


NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def strokes(digit: np.ndarray, level: int = 100) -> list[list[tuple[int, int]]]:
    """Pen strokes that trace a 28x28 uint8 digit: its skeleton's edges walked into polylines of (x, y),
    each from an end of the skeleton when it has one, so that a 1 is one stroke and a 0 a closed loop."""
    from skimage.morphology import skeletonize

    skeleton = skeletonize(digit >= level)
    pixels = {(int(y), int(x)) for y, x in zip(*np.nonzero(skeleton), strict=True)}
    adjacent = {
        p: [(p[0] + dy, p[1] + dx) for dy, dx in NEIGHBOURS if (p[0] + dy, p[1] + dx) in pixels] for p in pixels
    }
    unused = {frozenset((p, q)) for p in pixels for q in adjacent[p]}
    paths = []
    while unused:
        ends = [
            p for p in sorted(pixels) if len(adjacent[p]) == 1 and any(frozenset((p, q)) in unused for q in adjacent[p])
        ]
        at = ends[0] if ends else sorted(next(iter(sorted(unused, key=sorted))))[0]
        path = [at]
        while True:
            options = [q for q in adjacent[at] if frozenset((at, q)) in unused]
            if not options:
                break
            # straight on (4-neighbours) before diagonals, so the walk follows the line, not its corners
            nxt = min(options, key=lambda q: abs(q[0] - at[0]) + abs(q[1] - at[1]))
            unused.discard(frozenset((at, nxt)))
            path.append(nxt)
            at = nxt
        if len(path) > 2 or not paths:
            paths.append([(x, y) for y, x in path])
    return paths


def render(paths: list[list[tuple[int, int]]], scale: float, pen: int, size: int = 280) -> Image.Image:
    """The strokes drawn as the page's pad draws them: dark ink on white, a round pen ``pen`` px wide."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    r = pen / 2
    for path in paths:
        points = [((x + 0.5) * scale, (y + 0.5) * scale) for x, y in path]
        draw.line(points, fill=(17, 17, 17), width=pen, joint="curve")
        for x, y in points:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(17, 17, 17))
    return img
