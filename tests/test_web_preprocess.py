"""web/preprocess.js under Node against runtime.preprocess.to_mnist, pixel by pixel, on the same decoded images.

    python -m pytest tests/test_web_preprocess.py -q

The page's modules run as the site holds them (``web/*.js`` beside ``runtime/preprocess.json`` and ``ink.wasm``,
runtime/native/ink.c built for WebAssembly by ``pipeline.web``, in a folder of their own); every image is decoded
once by Pillow and handed to both as the same RGBA pixels (what a browser's ImageData holds). Tolerance: the 28x28s
differ by at most MAX_DIFF on at least SHARE of the images, and on every image both find the same digit (a tiny
classifier's top class) or both say why not; against the native core, whose C the page runs, by at most
SAME_C (libm's sin, in the Lanczos filter, may round differently in the last bit). Chromium (tests/test_web.py)
stays the test of the page itself.
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
from PIL import Image

from pipeline import web
from runtime import Classifier
from runtime.preprocess import PreprocessError, to_mnist
from tests import preprocess_cases, tiny_onnx

MAX_DIFF = 1 / 255  # largest difference of an output pixel ...
SHARE = 0.99  # ... on at least this share of the images
SAME_C = 1e-6  # largest difference from the native core on any image (measured: none, bit for bit)
SOURCES = Path(__file__).resolve().parent.parent / "web"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Image.Image]:
    return preprocess_cases.cases(tmp_path_factory.mktemp("sets"))


def run_node(images: list[Image.Image], folder: Path) -> list[dict]:
    """Each image through web/preprocess.js (mnistFromRgba) in Node: {"pixels": [...]} or {"error": ...}."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: apt-get install nodejs", pytrace=False)
    clang = web.wasm_compiler()
    if clang is None:
        pytest.fail(web.WASM_SKIPPED.replace("[web] skipped: ", ""), pytrace=False)
    for source in [*web.page_files(), SOURCES / "preprocess-cli.mjs"]:
        shutil.copy(source, folder / source.name)
    web.build_wasm(folder / web.WASM, clang)
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
    assert sum(isinstance(p, str) for p, _ in both) == preprocess_cases.NO_DIGIT


def test_the_28x28s_agree_pixel_by_pixel(both):
    pairs = [(p, n) for p, n in both if not isinstance(p, str) and not isinstance(n, str)]
    close = [float(np.abs(p - n).max()) <= MAX_DIFF for p, n in pairs]
    assert np.mean(close) >= SHARE, [i for i, ok in enumerate(close) if not ok]


def test_the_page_computes_what_the_native_core_computes(cases, both):
    native = [to_mnist(img, core="native") for img, (p, _) in zip(cases, both, strict=True) if not isinstance(p, str)]
    node = [n for p, n in both if not isinstance(p, str)]
    assert max(float(np.abs(a - b).max()) for a, b in zip(native, node, strict=True)) <= SAME_C


def test_a_classifier_sees_the_same_digit_in_both(both, tmp_path):
    onnx.save(tiny_onnx.classifier(), tmp_path / "tiny.onnx")
    clf = Classifier(tmp_path / "tiny.onnx")
    pairs = [(p, n) for p, n in both if not isinstance(p, str) and not isinstance(n, str)]
    python_digits = clf.predict(np.stack([p for p, _ in pairs])).argmax(1)
    node_digits = clf.predict(np.stack([n for _, n in pairs])).argmax(1)
    assert (python_digits == node_digits).all()
