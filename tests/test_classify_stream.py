"""Classifier.classify_many and runtime.classify over many images: lazy, in order, bounded, over processes.

    python -m pytest tests/test_classify_stream.py -q

On a tiny untrained model (tests/tiny_onnx.py): what is checked is the flow, not the digits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image, ImageDraw

from runtime.classifier import BATCH, Classifier
from runtime.preprocess import PreprocessError
from tests import tiny_onnx

ROOT = Path(__file__).resolve().parent.parent
COUNT = 2 * BATCH + 6  # more than a block of classify_many (jobs=1): two blocks, and processes for jobs > 1


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(tiny_onnx.classifier(), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """COUNT small drawn digits, one of them blank (no digit found), in a folder."""
    where = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(COUNT):
        img = Image.new("L", (60, 60), 255)
        if i != 10:
            points = [tuple(int(v) for v in rng.integers(8, 52, 2)) for _ in range(3)]
            ImageDraw.Draw(img).line(points, fill=0, width=5)
        img.save(where / f"{i:03d}.png")
    return where


def test_classify_many_reads_its_images_a_block_at_a_time(model, folder):
    paths = sorted(folder.iterdir())
    pulled = []

    def images():
        for path in paths:
            pulled.append(path)
            yield path

    results = Classifier(model).classify_many(images())
    next(results)
    assert len(pulled) == 2 * BATCH < len(paths)  # one block read, not every image


def test_processes_give_the_same_results_in_the_same_order(model, folder):
    paths = sorted(folder.iterdir())
    clf = Classifier(model)
    one, two = ([str(r) if isinstance(r, PreprocessError) else r.top for r in clf.classify_many(paths, jobs=j)]
                for j in (1, 2))  # fmt: skip
    assert len(one) == COUNT and one[10].startswith("no digit found") and one == two


def test_cli_jobs_print_the_same_lines_in_input_order(model, folder):
    def run(jobs: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "runtime.classify", "--model", str(model), "--jobs", jobs, str(folder)]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    one, two = run("1"), run("2")
    assert one.returncode == two.returncode == 1  # the blank image
    assert one.stdout == two.stdout and one.stderr == two.stderr
    assert [line.split(":")[0] for line in one.stdout.splitlines()] == [
        str(p) for p in sorted(folder.iterdir()) if p.name != "010.png"
    ]


def test_cli_refuses_zero_jobs_in_one_line(model, folder):
    command = [sys.executable, "-m", "runtime.classify", "--model", str(model), "--jobs", "0", str(folder)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "--jobs" in done.stderr
