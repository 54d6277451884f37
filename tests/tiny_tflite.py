"""Tiny int8 TFLite models of the pipeline's layers, built and converted in a test (a few seconds each).

from tests.tiny_tflite import tiny_model
path = tiny_model(tmp_path / "tiny_int8.tflite", (4, 6), (5, 3), 16)   # filters, kernel sizes, dense units
"""

from __future__ import annotations

import numpy as np

from pipeline.formats import tflite_io
from runtime.metadata import mnist_to_float


def tiny_model(path, filters: tuple[int, int], kernels: tuple[int, int], units: int, *, clusters: int = 0,
               per_unit: bool = False, qat: bool = False):  # fmt: skip
    """An int8 model of every supported op: conv-pool, conv-pool, flatten, dense (ReLU), dense, softmax; with
    ``clusters``, each dense kernel takes that many evenly spaced values, as weight clustering leaves it (or,
    ``per_unit``, each unit its own that many, as per-channel quantisation leaves a clustered layer). With ``qat``,
    the activations' ranges are tfmot's quantisation-aware ones (moved by a few training-mode steps), not
    post-training calibration's: a ReLU's output range then starts below 0, as in the pipeline's QAT models."""
    import tf_keras as keras

    layers = keras.layers
    rng = np.random.default_rng(0)
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(filters[0], kernels[0], activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(filters[1], kernels[1], activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(units, activation="relu"),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )
    for dense in [layer for layer in net.layers if clusters and isinstance(layer, layers.Dense)]:
        kernel, bias = dense.get_weights()
        low, high = (kernel.min(axis=0), kernel.max(axis=0)) if per_unit else (kernel.min(), kernel.max())
        levels = np.linspace(low, high, clusters, axis=-1)  # [units, k] or [k]
        nearest = np.abs(kernel[..., None] - levels).argmin(axis=-1)
        chosen = np.take_along_axis(np.broadcast_to(levels, (*kernel.shape, clusters)), nearest[..., None], -1)
        dense.set_weights([chosen[..., 0], bias])
    calibration = mnist_to_float((rng.random((64, 28, 28)) * 255 * (rng.random((64, 28, 28)) > 0.7)).astype(np.uint8))
    calibration[0, 0, 0] = 1.0  # the full pixel range, as MNIST has: an input scale of 1/255
    if qat:
        import tensorflow_model_optimization as tfmot

        net = tfmot.quantization.keras.quantize_model(net)
        for _ in range(3):
            net(calibration, training=True)
    path.write_bytes(tflite_io.convert(net, "int8", None if qat else calibration))
    return path
