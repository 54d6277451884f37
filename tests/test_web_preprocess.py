"""web/preprocess.js under Node against runtime.preprocess.to_mnist, pixel by pixel, on the same decoded images.

    python -m pytest tests/test_web_preprocess.py -q

The page's modules run as the site holds them (``web/*.js`` beside ``runtime/preprocess.json``, copied into
a folder of their own); every image is decoded once by Pillow and handed to both as the same RGBA pixels
(what a browser's ImageData holds). Tolerance: the 28x28s differ by at most MAX_DIFF on at least SHARE of
the images, and on every image both find the same digit (a tiny classifier's top class) or both say why not.
Chromium (tests/test_web.py) stays the test of the page itself.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image, ImageDraw

from pipeline import web
from pipeline.measure.user_images import paint, photo
from runtime import Classifier
from runtime.preprocess import PreprocessError, to_mnist
from tests import digits, tiny_onnx, user_images

MAX_DIFF = 1 / 255  # largest difference of an output pixel ...
SHARE = 0.99  # ... on at least this share of the images
PER_SET = 12  # MNIST-derived images per set of tests/user_images.py
SOURCES = Path(__file__).resolve().parent.parent / "web"


def handmade() -> list[Image.Image]:
    """Drawn and synthesised here: pens, colours, transparency, uneven light, two with no digit, and four seeded photos
    with shadows and the table beside the paper (test_preprocess's, each through another rule of runtime.ink) and a
    drawing in a fine pen."""
    seven = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(seven).line([(100, 40), (200, 40), (130, 170)], fill=(170, 0, 0), width=9)
    pencil = Image.new("L", (500, 300), 255)
    ImageDraw.Draw(pencil).line([(200, 40), (300, 40), (230, 260)], fill=0, width=1)
    ring = Image.new("L", (90, 120), 0)
    ImageDraw.Draw(ring).ellipse((20, 15, 70, 105), outline=255, width=8)
    mnist = user_images.mnist_sample()
    rng = np.random.default_rng(0)
    glass = digits.transparent(mnist["x_test"][0], rng)
    h, w = 240, 320
    light = 0.45 + 0.5 * np.mgrid[0:h, 0:w][1] / w
    ink = np.zeros((h, w), np.float32)
    ink[70:170, 110:210] = np.asarray(Image.fromarray(mnist["x_test"][1]).resize((100, 100)), np.float32) / 255
    lamp = (light * (1 - 0.8 * ink) + rng.normal(0, 0.03, (h, w))).clip(0, 1)
    blank = Image.new("RGB", (120, 80), "white")
    noise = Image.fromarray(rng.normal(128, 12, (90, 120)).clip(0, 255).astype(np.uint8))
    shadows = [photo(mnist["x_test"][seed], np.random.default_rng(seed)) for seed in (8, 33, 79, 21)]
    fine = paint(mnist["x_test"][225], np.random.default_rng(225))  # a fine pen, found again at more resolution
    return [seven, pencil, ring, glass, Image.fromarray((lamp * 255).astype(np.uint8)), blank, noise, *shadows, fine]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Image.Image]:
    folder = tmp_path_factory.mktemp("sets")
    mnist = user_images.mnist_sample()
    made = [path for name in user_images.SETS for path, _ in user_images.make_set(name, mnist, PER_SET, folder / name)]
    images = []
    for path in made:
        with Image.open(path) as img:
            images.append(img.copy())
    return handmade() + images


def run_node(images: list[Image.Image], folder: Path) -> list[dict]:
    """Each image through web/preprocess.js (mnistFromRgba) in Node: {"pixels": [...]} or {"error": ...}."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: apt-get install nodejs", pytrace=False)
    for source in [*web.page_files(), SOURCES / "preprocess-cli.mjs"]:
        shutil.copy(source, folder / source.name)
    items = []
    for img in images:
        rgba = np.asarray(img.convert("RGBA"))
        encoded = base64.b64encode(rgba.tobytes()).decode()
        items.append({"width": rgba.shape[1], "height": rgba.shape[0], "rgba": encoded})
    (folder / "images.json").write_text(json.dumps(items))
    command = [node, "preprocess-cli.mjs", "images.json", "out.json"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "out.json").read_text())


def python(img: Image.Image) -> np.ndarray | str:
    try:
        return to_mnist(img)
    except PreprocessError as e:
        return str(e)


@pytest.fixture(scope="module")
def both(cases, tmp_path_factory) -> list[tuple[np.ndarray | str, np.ndarray | str]]:
    found = run_node(cases, tmp_path_factory.mktemp("site"))
    node = [np.asarray(r["pixels"], np.float32).reshape(28, 28) if "pixels" in r else r["error"] for r in found]
    return list(zip([python(img) for img in cases], node, strict=True))


def test_the_page_reads_the_runtimes_constants():
    assert web.CONSTANTS.name == "preprocess.json" and web.CONSTANTS in web.page_files()


def test_both_say_no_digit_on_the_same_images_with_the_same_message(both):
    assert [(p, n) for p, n in both if isinstance(p, str) or isinstance(n, str)] == [
        (p, p) for p, _ in both if isinstance(p, str)
    ]
    assert sum(isinstance(p, str) for p, _ in both) == 2  # the blank and the noise of handmade()


def test_the_28x28s_agree_pixel_by_pixel(both):
    pairs = [(p, n) for p, n in both if not isinstance(p, str) and not isinstance(n, str)]
    close = [float(np.abs(p - n).max()) <= MAX_DIFF for p, n in pairs]
    assert np.mean(close) >= SHARE, [i for i, ok in enumerate(close) if not ok]


def test_a_classifier_sees_the_same_digit_in_both(both, tmp_path):
    onnx.save(tiny_onnx.classifier(), tmp_path / "tiny.onnx")
    clf = Classifier(tmp_path / "tiny.onnx")
    pairs = [(p, n) for p, n in both if not isinstance(p, str) and not isinstance(n, str)]
    python_digits = clf.predict(np.stack([p for p, _ in pairs])).argmax(1)
    node_digits = clf.predict(np.stack([n for _, n in pairs])).argmax(1)
    assert (python_digits == node_digits).all()
