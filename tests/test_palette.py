"""Distinct weight values per output channel and the palette index bits they need, on hand-made kernels."""

import numpy as np
import pytest

from pipeline.measure import palette


def test_palette_counts_distinct_values_per_output_channel_and_their_index_bits():
    kernel = np.zeros((3, 3, 2, 2), np.float32)
    kernel[..., 0] = np.arange(18).reshape(3, 3, 2) % 5  # 5 values: 3 bits
    kernel[..., 1] = 0.5  # 1 value
    found = palette.layer(kernel, -1)
    assert found == {"weights": 36, "distinct": 6, "distinct_per_channel": 5, "bits": 3}
    assert palette.index_bits(256, 8) == 8 and palette.index_bits(1000, 8) == 8 and palette.index_bits(16, 32) == 4
    summary = palette.summary({"a": found, "b": palette.layer(np.ones((4, 12), np.int8), 0)})
    assert summary["bits_per_weight"] == pytest.approx((3 * 36 + 1 * 48) / 84, abs=1e-3)
    assert summary["max_distinct_per_channel"] == 5


def test_layer_names_are_found_inside_a_converters_tensor_names():
    assert palette.layer_name("larger_cnn_16_12_48_32/quant_dense1/MatMul;.../FakeQuantWithMinMaxVars") == "dense1"
    assert palette.layer_name("something_else") == "something_else"
