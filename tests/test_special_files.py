"""The runtime refuses special files (a FIFO, a character device, a socket, a directory) with one line.

Reading a FIFO blocks until a writer comes and ``/dev/zero`` never ends, so the check comes before
the file is read; the other images are still classified. A tiny model built here keeps this fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from runtime.preprocess import PreprocessError, to_mnist
from tests import tiny_onnx

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def specials(tmp_path) -> dict[str, Path]:
    """One of each special file this host can make, by kind -> path."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    found = {"a FIFO": fifo, "a character device": Path("/dev/zero")}
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.png"))
        found["a socket"] = tmp_path / "s.png"
    except OSError:  # a path too long for AF_UNIX: the other kinds still run
        pass
    yield found
    sock.close()


@pytest.fixture
def good_image(tmp_path) -> Path:
    ink = np.zeros((28, 28), np.uint8)
    ink[5:23, 12:16] = 255  # a "1"
    path = tmp_path / "one.png"
    Image.fromarray(ink).save(path)
    return path


def _finishes(call, seconds: float = 10):
    """``call()``'s exception, from a thread given ``seconds``: a blocked open fails the test, not the run."""
    outcome = {}

    def target():
        try:
            call()
        except Exception as e:
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked reading a special file"
    return outcome.get("error")


@pytest.mark.parametrize("kind", ["a FIFO", "a character device", "a socket"])
def test_to_mnist_refuses_a_special_file_without_reading_it(specials, kind):
    if kind not in specials:
        pytest.skip(f"cannot make {kind} here")
    error = _finishes(lambda: to_mnist(specials[kind]))
    assert isinstance(error, PreprocessError) and str(error) == f"not a regular file ({kind})"


def test_to_mnist_refuses_a_directory(tmp_path):
    error = _finishes(lambda: to_mnist(tmp_path))
    assert isinstance(error, PreprocessError) and str(error) == "is a directory, not an image"


def test_classify_reports_each_special_file_in_one_line_and_classifies_the_rest(tmp_path, specials, good_image):
    model = tmp_path / "tiny.onnx"
    onnx.save(tiny_onnx.classifier(), model)
    arguments = [str(good_image), *map(str, specials.values()), str(good_image)]
    command = [sys.executable, "-m", "runtime.classify", "--model", str(model), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 1, done.stderr
    expected = [f"{path}: error: not a regular file ({kind})" for kind, path in specials.items()]
    assert done.stderr.splitlines() == expected
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [str(good_image)] * 2
