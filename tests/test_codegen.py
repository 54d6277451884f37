"""The C code generator: TFLite Micro's Prepare arithmetic in Python, and generated C bit-exact with TFLite Micro.

Fast: a tiny int8 model of every supported op is built and converted in the test, its C library
compiled with the host's cc, and its int8 outputs compared, image by image, with tflite_micro's
interpreter. The smoke models' libraries are checked the same way on every validation and test
image in tests/test_firmware.py.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import mcu
from pipeline.formats import codegen, tflite_io
from runtime.metadata import mnist_to_float

C = codegen.KERNELS


def build_host(lib, tmp_path):
    """The demo program around ``lib``, compiled by the host's cc."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on this host")
    exe = tmp_path / "classify_images"
    sources = [lib / "mnist_model.c", lib / "nn_int8.c", C / "classify_images.c"]
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    command = [cc, *flags, "-I", str(lib), *map(str, sources), "-o", str(exe)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return exe


def run_c(exe, pixels: np.ndarray, folder) -> np.ndarray:
    """``exe`` on uint8 ``pixels`` [N,28,28] through images.bin -> outputs.bin, as on a board."""
    pixels.astype(np.uint8).tofile(folder / "images.bin")
    done = subprocess.run([str(exe)], cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and f"classified {len(pixels)} images" in done.stdout, done.stdout + done.stderr
    return np.fromfile(folder / "outputs.bin", np.int8).reshape(len(pixels), -1)


def tflm_outputs(model, pixels: np.ndarray) -> np.ndarray:
    encoded = tflite_io.spec(model).encode(mnist_to_float(pixels))
    it = mcu.interpreter(model.read_bytes(), 1 << 20, encoded[:1])
    return mcu.outputs(it, encoded)[0].reshape(len(pixels), -1)


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory):
    """Conv-pool, conv-pool, flatten, two dense layers (ReLU and none) and softmax: the ops of the pipeline's models."""
    import tf_keras as keras

    layers = keras.layers
    rng = np.random.default_rng(0)
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, 5, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(6, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )
    calibration = mnist_to_float((rng.random((64, 28, 28)) * 255 * (rng.random((64, 28, 28)) > 0.7)).astype(np.uint8))
    calibration[0, 0, 0] = 1.0  # the full pixel range, as MNIST has: an input scale of 1/255
    path = tmp_path_factory.mktemp("tiny") / "tiny_int8.tflite"
    path.write_bytes(tflite_io.convert(net, "int8", calibration))
    return path


def test_quantize_multiplier_is_tflites():
    assert codegen.quantize_multiplier(0.5) == (1073741824, 0)
    assert codegen.quantize_multiplier(0.75) == (1610612736, 0)
    assert codegen.quantize_multiplier(1.5) == (1610612736, 1)
    assert codegen.quantize_multiplier(0.999999999999) == (1073741824, 1)  # the fraction rounds up to 1.0
    assert codegen.quantize_multiplier(1e-10) == (0, 0)  # below 2^-31: flushed
    assert codegen.quantize_multiplier(0.0) == (0, 0)


def test_softmax_parameters_are_tflm_prepares():
    assert codegen.softmax_parameters(1.0, 1 / 16) == (2**30, 23, -248)


def test_the_generated_c_is_bit_exact_with_tflite_micro(tiny_int8, tmp_path):
    lib = tmp_path / "lib"
    written = codegen.generate(tiny_int8, lib)
    assert sorted(p.name for p in written) == ["mnist_model.c", "mnist_model.h", "nn_int8.c", "nn_int8.h"]
    rng = np.random.default_rng(1)
    pixels = (rng.random((300, 28, 28)) * 255 * (rng.random((300, 28, 28)) > 0.6)).astype(np.uint8)
    pixels[0], pixels[1] = 0, 255  # a blank and a saturated image
    got = run_c(build_host(lib, tmp_path), pixels, tmp_path)
    expected = tflm_outputs(tiny_int8, pixels)
    differ = np.flatnonzero((got != expected).any(axis=1))
    assert not len(differ), f"{len(differ)} of {len(pixels)} images differ from TFLite Micro, first {differ[:5]}"


def test_the_library_uses_no_float_and_no_allocation(tiny_int8, tmp_path):
    codegen.generate(tiny_int8, tmp_path)
    code = "".join((tmp_path / name).read_text() for name in ("mnist_model.c", "nn_int8.c"))
    for word in ("float", "double", "malloc", "free(", "#include <math.h>", "#include <stdlib.h>"):
        assert word not in code, word


def test_the_arena_holds_the_largest_input_output_pair_and_they_never_overlap(tiny_int8):
    layers = codegen.read(tiny_int8)
    arena, offsets = codegen.arena_plan(layers)
    sizes = [int(np.prod(layer.output.shape)) for layer in layers[:-1]]
    assert arena == max([sizes[0], *(a + b for a, b in itertools.pairwise(sizes)), sizes[-1]])
    for j in range(1, len(sizes)):
        a, b = (offsets[j - 1], offsets[j - 1] + sizes[j - 1]), (offsets[j], offsets[j] + sizes[j])
        assert a[1] <= b[0] or b[1] <= a[0], f"layer {j} writes over its input"


def test_an_op_the_library_lacks_is_refused_in_one_line(tmp_path):
    import tf_keras as keras

    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(), keras.layers.Flatten()])
    calibration = np.zeros((4, 28, 28, 1), np.float32)
    path = tmp_path / "avg.tflite"
    path.write_bytes(tflite_io.convert(net, "int8", calibration))
    with pytest.raises(codegen.UnsupportedModel, match="op AVERAGE_POOL_2D is not supported"):
        codegen.read(path)
