"""The browser target: ``pipeline.web`` builds the site, ``pipeline.serve`` serves it, a real Chromium runs it.

    python -m pytest tests/test_web.py -q

The fast tests check the server and the stage's npm handling on tiny folders. The slow ones build the
site from the smoke pipeline's models, serve it with ``pipeline.serve`` and drive Debian's headless
Chromium with Playwright: the page must classify what is drawn on it, agree with Python onnxruntime on
MNIST pixels (every image, probabilities within 1e-4) and with ``runtime.classify`` on the user-style
images of ``tests/digits.py``, work offline once loaded, and say so when the model or wasm is missing.
Without Chromium they fail (``tests/browser.py`` says what to install); they never skip.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pipeline import config, data, web
from pipeline.core import stage
from runtime import Classifier, native
from runtime.metadata import mnist_to_float
from runtime.preprocess import PreprocessError
from tests import browser, digits

PIXEL_IMAGES = 300  # MNIST test images compared pixel-for-pixel input with Python onnxruntime
STYLE_IMAGES = 30  # user-style images per style of tests/digits.py
DRAWN = 5  # digits drawn on the pad with the mouse
TOLERANCE = 1e-4  # largest difference of a probability between the browser and Python
INT8_DIFFER = 0.01  # share of images an int8-output model may exceed TOLERANCE on (its digit must still agree)


# ---- fast: the server and the stage's npm handling, on tiny folders ----


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    site = tmp_path / "web"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    wasm = b"\0asm" + bytes(4000)
    (site / "x.wasm").write_bytes(wasm)
    (site / "x.wasm.gz").write_bytes(gzip.compress(wasm))
    (site / "x.mjs").write_text("export const x = 1;\n")
    (site / "m.onnx").write_bytes(b"\x08\x08")
    return tmp_path


def get(url: str, gzip_ok: bool) -> tuple[dict, bytes]:
    """The response's headers (names in lower case) and body."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip_ok else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {k.lower(): v for k, v in response.headers.items()}, response.read()


def test_serve_sets_mime_types_and_sends_gzip_copies(tiny_site, tmp_path):
    with browser.serving(tiny_site, tmp_path / "serve.log") as url:
        types = {name: get(url + name, False)[0]["content-type"] for name in ("x.wasm", "x.mjs", "m.onnx", "")}
        packed_headers, packed = get(url + "x.wasm", True)
        plain_headers, plain = get(url + "x.wasm", False)
    assert types["x.wasm"] == "application/wasm"
    assert types["x.mjs"].startswith("text/javascript")
    assert types["m.onnx"] == "application/octet-stream"
    assert types[""].startswith("text/html")
    assert packed_headers["content-encoding"] == "gzip" and gzip.decompress(packed) == plain
    assert "content-encoding" not in plain_headers


def serve_error(*args: str, artifacts: Path) -> str:
    env = os.environ | {"ARTIFACTS": str(artifacts), "PROFILE": "smoke"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_serve_says_when_the_port_is_taken(tiny_site):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert "already in use" in serve_error("--port", str(taken.getsockname()[1]), artifacts=tiny_site)


def test_serve_says_when_the_site_is_not_built(tmp_path):
    assert "make web" in serve_error("--port", "0", artifacts=tmp_path)


def test_web_stage_skips_without_npm(tmp_path, monkeypatch):
    sources = tmp_path / "web"
    sources.mkdir()
    shutil.copy(web.SOURCES / "package.json", sources)
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    assert web.ensure_runtime(sources) is None


@pytest.mark.parametrize("clang", ["no-such-clang", "gcc"])  # missing, or a compiler with no wasm32 target
def test_web_stage_skips_without_a_clang_for_webassembly(clang, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(web.WASM_CC, clang)
    assert web.wasm_compiler() is None
    monkeypatch.setattr(web, "models", lambda cfg: [])
    monkeypatch.setattr(web, "ensure_runtime", lambda: tmp_path)
    assert web.run(config.load("smoke", tmp_path)) is None
    assert capsys.readouterr().out.strip() == web.WASM_SKIPPED


def test_the_page_builds_ink_c_as_the_runtime_does():
    assert web.CFLAGS == native.CFLAGS and web.INK_C == native.SOURCE


def test_package_json_pins_onnxruntime_web_exactly():
    version = web.pinned_version()
    lock = json.loads((web.SOURCES / "package-lock.json").read_text())
    assert version[0].isdigit(), "an exact version, not a range"
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == version


# ---- slow: the site built from the smoke pipeline, in Chromium ----


@pytest.fixture(scope="module")
def site(smoke_artifacts, tmp_path_factory) -> Path:
    """An artifacts folder holding the smoke models (links) and the site the stage builds from them."""
    root = tmp_path_factory.mktemp("web-artifacts")
    for path in [*smoke_artifacts.glob("*.onnx"), smoke_artifacts / "benchmark.json"]:
        (root / path.name).symlink_to(path)
    built = web.run(config.load("smoke", root))
    if built is None:
        pytest.fail("the web stage was skipped: install npm (apt-get install npm)", pytrace=False)
    return built


@pytest.fixture(scope="module")
def url(site, tmp_path_factory):
    with browser.serving(site.parent, tmp_path_factory.mktemp("serve") / "serve.log") as address:
        yield address


@pytest.fixture(scope="module")
def chromium():
    with browser.chromium() as b:
        yield b


def open_page(chromium, address: str, requests: list | None = None):
    page = chromium.new_page()
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    page.goto(address)
    return page


@pytest.fixture(scope="module")
def page(chromium, url):
    page = open_page(chromium, url)
    page.evaluate("window.mnistEdge.ready")
    yield page
    page.close()


@pytest.fixture(scope="module")
def mnist(smoke_artifacts) -> dict[str, np.ndarray]:
    return data.load(smoke_artifacts / "data" / "mnist.npz")


@pytest.mark.slow
def test_site_holds_the_page_the_models_and_only_the_wasm_backend(site, smoke_artifacts):
    names = {p.name for p in site.iterdir() if p.suffix != ".gz"}
    bench = json.loads((smoke_artifacts / "benchmark.json").read_text())
    onnx = {a["name"] for a in bench["artifacts"] if a["format"] == "onnx"} | {"model.onnx"}
    page = {p.name for p in web.page_files()}
    assert names == page | onnx | set(web.RUNTIME_FILES) | {web.WASM}
    assert (site / "ort-wasm-simd-threaded.wasm.gz").is_file()
    where = config.load("smoke", site.parent, overrides=[])
    record = json.loads(stage.record_path(where, site / "index.html").read_text())
    assert record["stage"] == "web" and record["gzip_bytes"] < record["bytes"]


@pytest.mark.slow
def test_page_loads_from_the_server_alone_and_works_offline(chromium, url, smoke_artifacts):
    requests = []
    page = open_page(chromium, url, requests)
    info = page.evaluate("window.mnistEdge.ready")
    deployed = json.loads((smoke_artifacts / "deploy.json").read_text())["deployed"]
    assert info["model"] == "model.onnx" and f"model.onnx ({deployed}, " in page.inner_text("#status")
    assert all(r.startswith(url) for r in requests), requests
    assert {r.rsplit("/", 1)[1] for r in requests if r.endswith((".wasm", ".mjs"))} == {*web.RUNTIME_FILES, web.WASM}
    page.context.set_offline(True)
    try:
        result = page.evaluate("window.mnistEdge.classifyPixels(new Float32Array(784).fill(0.5))")
    finally:
        page.context.set_offline(False)
        page.close()
    assert set(result) == {"digit", "confidence", "top"} and len(result["top"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("model", ["model.onnx", "pruned_qat_int8.onnx"])
def test_classify_pixels_agrees_with_onnxruntime(chromium, url, site, mnist, model):
    clf = Classifier(site / model)
    assert model == "model.onnx" or clf.spec.input_dtype == "uint8"  # an integer input, quantised by the page
    x = mnist_to_float(mnist["x_test"][:PIXEL_IMAGES])
    expected = clf.predict(x)
    page = open_page(chromium, f"{url}?model={model}")
    got = page.evaluate(browser.CLASSIFY_ALL, x.ravel().tolist())
    page.close()
    probabilities = np.array([p for _, p in got])
    assert [d for d, _ in got] == [clf.prediction(p).digit for p in expected]
    differ = np.abs(probabilities - expected).max(axis=1) > TOLERANCE
    if clf.session.get_outputs()[0].type == "tensor(float)":
        assert not differ.any()
    else:  # wasm's and x86's int8 kernels may round an intermediate value to neighbouring steps on a rare image
        assert differ.mean() <= INT8_DIFFER


@pytest.mark.slow
def test_drawing_on_the_pad_gives_the_digit(page, site, mnist):
    clf = Classifier(site / "model.onnx")
    chosen, seen = [], set()
    for digit, label in zip(mnist["x_test"][:100], mnist["y_test"][:100], strict=True):
        paths = browser.strokes(digit)
        if label not in seen and clf.classify(browser.render(paths, scale=10, pen=18)).digit == label:
            chosen.append((int(label), paths))
            seen.add(label)
        if len(chosen) == DRAWN:
            break
    box = page.locator("#pad").bounding_box()
    at = lambda x, y: (box["x"] + (x + 0.5) * box["width"] / 28, box["y"] + (y + 0.5) * box["height"] / 28)  # noqa: E731
    drawn = []
    for label, paths in chosen:
        page.click("#clear")
        count = int(page.get_attribute("#result", "data-count") or 0)
        for path in paths:
            page.mouse.move(*at(*path[0]))
            page.mouse.down()
            for point in path[1:]:
                page.mouse.move(*at(*point), steps=2)
            page.mouse.up()
        page.wait_for_function(f"document.querySelector('#result').dataset.count == {count + len(paths)}")
        drawn.append((label, int(page.get_attribute("#result", "data-digit"))))
    assert len(chosen) == DRAWN
    assert drawn == [(label, label) for label, _ in chosen]


@pytest.mark.slow
def test_classify_image_agrees_with_the_runtime(page, site, mnist):
    folder = site / "test-images"
    folder.mkdir(exist_ok=True)
    cases = [case for style in digits.STYLES for case in digits.write_style(style, mnist, STYLE_IMAGES, folder)]
    clf = Classifier(site / "model.onnx")
    expected = [None if isinstance(r, PreprocessError) else r.digit for r in clf.classify_many(p for p, _ in cases)]
    got = page.evaluate(browser.CLASSIFY_FILES, [f"test-images/{p.name}" for p, _ in cases])
    differ = [(p.name, e, g) for (p, _), e, g in zip(cases, expected, got, strict=True) if e != g]
    assert len(differ) <= 0.01 * len(cases), differ


@pytest.mark.slow
def test_a_missing_model_is_said_on_the_page(chromium, url):
    page = open_page(chromium, f"{url}?model=missing.onnx")
    error = page.evaluate("window.mnistEdge.ready.then(() => null, (e) => e.message)")
    shown = page.inner_text("#error")
    page.close()
    assert error and "missing.onnx" in shown and "404" in shown


@pytest.mark.slow
def test_missing_wasm_is_said_on_the_page(chromium, url):
    page = chromium.new_page()
    page.route("**/*.wasm", lambda route: route.abort())
    page.goto(url)
    error = page.evaluate("window.mnistEdge.ready.then(() => null, (e) => e.message)")
    shown = page.inner_text("#error")
    page.close()
    assert error and "WebAssembly" in shown


@pytest.mark.slow
def test_missing_image_analysis_is_said_on_the_page(chromium, url):
    page = chromium.new_page()
    page.route(f"**/{web.WASM}", lambda route: route.fulfill(status=404, body="not here"))
    page.goto(url)
    error = page.evaluate("window.mnistEdge.ready.then(() => null, (e) => e.message)")
    shown, status = page.inner_text("#error"), page.inner_text("#status")
    page.close()
    assert error and f"{web.WASM}" in shown and "404" in shown and "could not start" in status
