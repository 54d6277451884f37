"""The C code generator: TFLite Micro's Prepare arithmetic in Python, and generated C bit-exact with TFLite Micro.

Fast: a tiny int8 model of every supported op is built and converted in the test, its C library
compiled with the host's cc, and its int8 outputs compared, image by image, with tflite_micro's
interpreter. The smoke models' libraries are checked the same way on every validation and test
image in tests/test_firmware.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import mcu
from pipeline.formats import arena, codegen, int8_layers, tflite_io
from runtime.metadata import mnist_to_float
from tests.tiny_tflite import tiny_model

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
    """The pipeline's layer shapes in small: 5 x 5 filters on the pixels, 3 x 3 on 4 channels."""
    return tiny_model(tmp_path_factory.mktemp("tiny") / "tiny_int8.tflite", (4, 6), (5, 3), 16)


@pytest.fixture(scope="module")
def awkward_int8(tmp_path_factory):
    """Every path of the kernels: filter rows of 3 bytes (no whole word) on the pixels, rows of 66 bytes
    (16 words and 2 left) in filters too long for four positions at once, a dense layer 125 deep (not
    whole words) with an odd number of units."""
    return tiny_model(tmp_path_factory.mktemp("awkward") / "awkward_int8.tflite", (22, 5), (3, 3), 15)


@pytest.fixture(scope="module")
def clustered_int8(tmp_path_factory):
    """Dense kernels of 16 values: the first (200 deep, 16 units) is palette-coded, the second too small to pay."""
    return tiny_model(tmp_path_factory.mktemp("clustered") / "clustered_int8.tflite", (4, 8), (5, 3), 16, clusters=16)


@pytest.fixture(scope="module")
def clustered_units_int8(tmp_path_factory):
    """The same with 16 values per unit: the first dense layer takes 16-value tables per unit."""
    path = tmp_path_factory.mktemp("clustered_units") / "clustered_units_int8.tflite"
    return tiny_model(path, (4, 8), (5, 3), 16, clusters=16, per_unit=True)


def random_digits(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((n, 28, 28)) * 255 * (rng.random((n, 28, 28)) > 0.6)).astype(np.uint8)
    pixels[0], pixels[1] = 0, 255  # a blank and a saturated image
    return pixels


def test_quantize_multiplier_is_tflites():
    assert int8_layers.quantize_multiplier(0.5) == (1073741824, 0)
    assert int8_layers.quantize_multiplier(0.75) == (1610612736, 0)
    assert int8_layers.quantize_multiplier(1.5) == (1610612736, 1)
    assert int8_layers.quantize_multiplier(0.999999999999) == (1073741824, 1)  # the fraction rounds up to 1.0
    assert int8_layers.quantize_multiplier(1e-10) == (0, 0)  # below 2^-31: flushed
    assert int8_layers.quantize_multiplier(0.0) == (0, 0)


def test_softmax_parameters_are_tflm_prepares():
    assert int8_layers.softmax_parameters(1.0, 1 / 16) == (2**30, 23, -248)


@pytest.mark.parametrize("model", ["tiny_int8", "awkward_int8", "clustered_int8", "clustered_units_int8"])
def test_the_generated_c_is_bit_exact_with_tflite_micro(model, request, tmp_path):
    path = request.getfixturevalue(model)
    lib = tmp_path / "lib"
    written = codegen.generate(path, lib)
    assert sorted(p.name for p in written) == ["mnist_model.c", "mnist_model.h", "nn_int8.c", "nn_int8.h"]
    pixels = random_digits(300, 1)
    got = run_c(build_host(lib, tmp_path), pixels, tmp_path)
    expected = tflm_outputs(path, pixels)
    differ = np.flatnonzero((got != expected).any(axis=1))
    assert not len(differ), f"{len(differ)} of {len(pixels)} images differ from TFLite Micro, first {differ[:5]}"


@pytest.mark.emulated
@pytest.mark.parametrize("model", ["awkward_int8", "clustered_int8", "clustered_units_int8"])
@pytest.mark.parametrize("key", ["cortex-m4f", "cortex-m3"])
def test_the_dsp_and_plain_kernels_are_bit_exact_on_a_cortex_m(model, key, request, tmp_path):
    """The M4F runs the SMLAD path, the M3 the plain C one: both must give TFLite Micro's integers."""
    from pipeline.measure import cortex_m

    if cortex_m.missing():
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {cortex_m.missing()}: {cortex_m.INSTALL}")
        pytest.skip(f"no Cortex-M toolchain: {cortex_m.INSTALL}")
    path = request.getfixturevalue(model)
    codegen.generate(path, tmp_path / "lib")
    elf = tmp_path / f"{key}.elf"
    cortex_m.build(cortex_m.CORES[key], tmp_path / "lib", elf)
    pixels = random_digits(100, 2)
    ran = cortex_m.run(cortex_m.CORES[key], elf, pixels, tmp_path / "run", 300)
    np.testing.assert_array_equal(ran["outputs"], tflm_outputs(path, pixels))


def _decode(kind: str, table: np.ndarray, indices: np.ndarray, units: int, depth: int) -> np.ndarray:
    """The weights the kernels read back from a palette, independently of how codegen built it."""
    b = indices.reshape(units, depth // 4, 2).astype(np.int64)
    if kind == "pairs":
        halves = np.stack([table.astype(np.int16), (table >> 16).astype(np.int16)], axis=-1)  # (low, high) per byte
        low, high = halves[b, 0], halves[b, 1]
    else:
        rows = np.arange(units)[:, None, None]
        low, high = table[rows, b & 15], table[rows, b >> 4]
    return np.stack([low[..., 0], low[..., 1], high[..., 0], high[..., 1]], -1).reshape(units, depth)


PALETTES = [
    ("clustered_int8", "pairs", "nn_fully_connected_p4("),
    ("clustered_units_int8", "units", "nn_fully_connected_p4c("),
]


@pytest.mark.parametrize(("model", "kind", "kernel"), PALETTES)
def test_clustered_dense_weights_are_stored_as_4_bit_indices_and_decode_to_the_int8_weights(
    model, kind, kernel, request, tmp_path
):
    path = request.getfixturevalue(model)
    codegen.generate(path, tmp_path)
    assert (tmp_path / "mnist_model.c").read_text().count(kernel) == 1
    dense = [layer for layer in int8_layers.read(path) if layer.kind == "fully_connected"]
    found, table, indices = codegen.palette(dense[0].weights.data)
    units, depth = dense[0].weights.shape
    assert found == kind and indices.shape == (units, depth // 2)
    np.testing.assert_array_equal(_decode(kind, table, indices, units, depth), dense[0].weights.data)
    assert codegen.weight_bytes(dense[0]) == units * depth // 2 + (1024 if kind == "pairs" else 16 * units)
    assert codegen.palette(dense[1].weights.data) is None  # 10 x 16 weights: a table would cost more


def test_the_library_uses_no_float_and_no_allocation(tiny_int8, tmp_path):
    codegen.generate(tiny_int8, tmp_path)
    code = "".join((tmp_path / name).read_text() for name in ("mnist_model.c", "nn_int8.c"))
    for word in ("float", "double", "malloc", "free(", "#include <math.h>", "#include <stdlib.h>"):
        assert word not in code, word


@pytest.mark.parametrize("model", ["tiny_int8", "awkward_int8"])
def test_no_layer_writes_over_what_it_has_still_to_read(model, request):
    """Within the arena, each layer's input, output and scratch are apart, but a conv-pool output may begin
    `lag` bytes or more before its input (pooled position p writes [p oc, (p+1) oc) after reading from
    start(p) on): checked here position by position against what the kernels read."""
    layers = int8_layers.read(request.getfixturevalue(model))
    scratch = [codegen.scratch_bytes(layer) for layer in layers]
    memory = arena.plan(layers, scratch)
    sizes = [int(np.prod(layer.output.shape)) for layer in layers[:-1]]
    overlapped = 0
    for j, layer in enumerate(layers[:-1]):
        out = (memory.outputs[j], memory.outputs[j] + sizes[j])
        spans = [out] + ([(memory.outputs[j - 1], memory.outputs[j - 1] + sizes[j - 1])] if j else [])
        if memory.scratch[j] is not None:
            assert memory.scratch[j] % 4 == 0  # the DSP path loads words from it
            spans.append((memory.scratch[j], memory.scratch[j] + scratch[j]))
        assert all(a >= 0 and b <= memory.size for a, b in spans)
        for (a0, a1), (b0, b1) in itertools.combinations(spans, 2):
            if j and layer.kind == "conv_pool" and {(a0, a1), (b0, b1)} == set(spans[:2]):
                continue  # checked below
            assert a1 <= b0 or b1 <= a0, f"layer {j}: its input, scratch and output overlap"
        if j and layer.kind == "conv_pool" and not (out[1] <= spans[1][0] or spans[1][1] <= out[0]):
            overlapped += 1
            _, h, w, c = layer.inputs.shape
            oc, k = layer.weights.shape[0], layer.weights.shape[1]
            pw = (w - k + 1) // 2
            for p in range((h - k + 1) // 2 * pw):
                written_end = out[0] + (p + 1) * oc
                first_read = spans[1][0] + (2 * (p // pw) * w + 2 * (p % pw)) * c
                assert written_end <= first_read, f"layer {j}, position {p}: overwrites input still to be read"
    assert overlapped  # the second conv writes over the first's output


def test_filters_are_stored_as_whole_words_of_each_row_then_the_rows_leftovers():
    order = codegen.filter_order(5, 1)  # rows of 5 bytes: one word each, then the fifth column, padded
    assert list(order) == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 20, 21, 22, 23,
                           4, 9, 14, 19, 24, -1, -1, -1]  # fmt: skip
    assert list(codegen.filter_order(3, 16)) == list(range(144))  # rows of 48 bytes: the natural order
    assert codegen.conv_depth(3, 30) == 272  # rows of 90 bytes: 3 x 88, then 6 values and 2 zeros


def test_an_op_the_library_lacks_is_refused_in_one_line(tmp_path):
    import tf_keras as keras

    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(), keras.layers.Flatten()])
    calibration = np.zeros((4, 28, 28, 1), np.float32)
    path = tmp_path / "avg.tflite"
    path.write_bytes(tflite_io.convert(net, "int8", calibration))
    with pytest.raises(int8_layers.UnsupportedModel, match="op AVERAGE_POOL_2D is not supported"):
        int8_layers.read(path)


def test_the_generator_plans_the_lengths_the_kernels_read(tmp_path):
    """codegen.conv_depth and scratch_bytes restate nn_conv_depth and nn_conv_scratch_words: the same numbers."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on this host")
    shapes = [(5, 1), (3, 1), (3, 16), (3, 30), (3, 22), (5, 3), (1, 7)]
    main = tmp_path / "lengths.c"
    calls = "".join(
        f'  printf("%d %d\\n", nn_conv_depth({k}, {c}), nn_conv_scratch_words({k}, {c}));\n' for k, c in shapes
    )
    main.write_text(f'#include <stdio.h>\n#include "nn_int8.h"\nint main(void) {{\n{calls}  return 0;\n}}\n')
    exe = tmp_path / "lengths"
    subprocess.run([cc, "-std=c99", "-I", str(C), str(main), str(C / "nn_int8.c"), "-o", str(exe)], check=True)
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    got = [tuple(map(int, line.split())) for line in printed]
    for (k, c), (depth, words) in zip(shapes, got, strict=True):
        assert depth == codegen.conv_depth(k, c), (k, c)
        weights = int8_layers.Tensor((1, k, k, c), np.ones(1, np.float32), np.zeros(1, np.int64), None)
        layer = int8_layers.Layer("conv_pool", "conv", weights, weights, weights)
        assert 4 * words == codegen.scratch_bytes(layer), (k, c)
