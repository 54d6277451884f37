"""pipeline.images (the image path on user-style sets -> images.json) and its section of the report.

    python -m pytest tests/test_images.py -q

On the committed MNIST sample and a tiny untrained model: what is checked is what is written, not the digits.
"""

from __future__ import annotations

import json

import onnx
import pytest

from pipeline import config, data, images
from pipeline.core import stage
from pipeline.measure import user_images
from pipeline.reporting import images as section
from tests import tiny_onnx
from tests.user_images import mnist_sample


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("images")
    cfg = config.load("smoke", folder, overrides=[])
    onnx.save(tiny_onnx.classifier(), folder / "model.onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "load", lambda path: mnist_sample())
        patch.setattr(images, "PER_SET", 3)
        patch.setattr(images, "REPEAT", 1)
        out = images.run(cfg)
    assert stage.record_path(cfg, out).is_file()
    return json.loads(out.read_text())


def test_every_set_is_timed_side_by_side_with_its_decode(written):
    assert list(written["sets"]) == list(user_images.SETS)
    for figures in written["sets"].values():
        assert figures["images"] == 3 and figures["decode_ms"] > 0 and figures["to_mnist_ms"] > 0
        assert figures["ratio"] == pytest.approx(figures["to_mnist_ms"] / figures["decode_ms"], rel=0.02)
        assert figures["numpy_ms"] > 0


def test_the_compiled_core_is_measured_beside_numpys(written):
    assert written["core"] == "native"  # this machine has a C compiler: CI's too
    text = section.section(written)
    assert "| numpy ms | numpy / decode |" in text and "runtime/native/ink.c" in text
    numpy_only = written | {"core": "numpy"}
    assert "numpy ms" not in section.section(numpy_only) and "did not build" in section.section(numpy_only)


def test_the_analysis_is_timed_inside_to_mnist_and_the_rest_is_reported_as_the_floor(written):
    assert all(figures["analysis_ms"] > 0 for figures in written["sets"].values())  # timed in runs of its own
    text = section.section(written)
    assert "| of it the analysis, ms | the rest / decode |" in text
    drawing = written["sets"]["drawing"]
    rest = (drawing["to_mnist_ms"] - drawing["analysis_ms"]) / drawing["decode_ms"]
    assert f"| {drawing['analysis_ms']:.2f} | {rest:.2f} |" in text
    before = written | {"sets": {k: v | {"analysis_ms": None} for k, v in written["sets"].items()}}  # schema 2
    assert "the rest / decode" not in section.section(before) and "numpy ms" in section.section(before)


def test_throughput_is_measured_with_one_job_and_every_core(written):
    assert [t["jobs"] for t in written["throughput"]] == sorted({1, written["cores"]})
    assert all(t["images"] == 3 * len(user_images.SETS) for t in written["throughput"])


def test_the_report_shows_every_set_and_marks_the_user_style_ones(written):
    text = section.section(written)
    for name in user_images.SETS:
        assert f"| {name}{' *' if name in user_images.USER_STYLE else ''} |" in text
    assert "images/s with 1 job(s)" in text


def test_no_section_without_the_stage():
    assert section.section(None) == ""
