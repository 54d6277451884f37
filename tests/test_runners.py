"""The runners on a tiny model built in the test: LiteRT's throughput at any batch size and image count."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.formats import tflite_io
from pipeline.measure import runners


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    import tf_keras as keras

    layers = [keras.layers.Flatten(input_shape=(28, 28, 1)), keras.layers.Dense(10, activation="softmax")]
    net = keras.Sequential(layers)
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(tflite_io.convert(net, "fp32", None))
    return path


@pytest.mark.parametrize(("images", "batch"), [(10, 256), (300, 64)])
def test_litert_throughput_runs_at_the_batch_it_is_given(tiny_tflite, images, batch):
    x = np.random.default_rng(0).random((images, 28, 28, 1)).astype(np.float32)
    found = runners.open_model(tiny_tflite, "tflite").throughput(x, batch, seconds=0.05)
    assert found["batch"] == min(images, batch) and found["value"] > 0
