"""The larger CNN and how every stage trains it.

    from pipeline.nn import model
    net = model.build()
    model.fit(net, splits, cfg.train, what="train", epochs=10, learning_rate=2e-3, warmup_epochs=1, seed=1234)
    model.finish(cfg, "train", net, output, parents=[...], started=t0, data=splits)  # evaluate, save, record

Architecture (the classic Keras tutorial's "larger CNN"): Conv 30@5x5 -> pool -> Conv 15@3x3
-> pool -> Dropout 0.2 -> Flatten -> Dense 128 -> Dense 50 -> Dense 10 softmax, trained with
Adam on categorical cross-entropy. Inputs are float [N,28,28,1] in [0,1].
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import tf_keras as keras

from pipeline.config import LAYERS, TrainConfig
from pipeline.core import progress

log = logging.getLogger("pipeline.nn.model")

NUM_CLASSES = 10
PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)


WIDTHS = (30, 15, 128, 50)  # conv1 filters, conv2 filters, dense1 units, dense2 units


def build(widths: tuple[int, int, int, int] = WIDTHS) -> keras.Model:
    """The larger CNN; narrower ``widths`` give the same family after structured pruning."""
    layers = keras.layers
    f1, f2, u1, u2 = widths
    conv1, conv2, dense1, dense2, probabilities = LAYERS
    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(f1, 5, activation="relu", name=conv1),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(f2, 3, activation="relu", name=conv2),
            layers.MaxPooling2D(name="pool2"),
            layers.Dropout(0.2, name="dropout"),
            layers.Flatten(name="flatten"),
            layers.Dense(u1, activation="relu", name=dense1),
            layers.Dense(u2, activation="relu", name=dense2),
            layers.Dense(NUM_CLASSES, activation="softmax", name=probabilities),
        ],
        name="larger_cnn" if widths == WIDTHS else "larger_cnn_" + "_".join(map(str, widths)),
    )


class ShiftedImages(keras.utils.Sequence):
    """Shuffled one-hot batches; each epoch shifts every image by up to ``shift`` pixels.

    Deterministic: epoch ``e`` draws its order and shifts from ``seed + e``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shift: int, seed: int):
        super().__init__()
        self.x, self.y = x, keras.utils.to_categorical(y, NUM_CLASSES)
        self.batch_size, self.shift, self.seed = batch_size, shift, seed
        self.epoch = 0
        self._prepare()

    def _prepare(self) -> None:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.order = rng.permutation(len(self.x))
        self.offsets = rng.integers(-self.shift, self.shift + 1, size=(len(self.x), 2))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x = self.x[idx]
        if self.shift:
            s = self.shift
            padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
            rows = (s - self.offsets[idx, 0])[:, None] + np.arange(28)
            cols = (s - self.offsets[idx, 1])[:, None] + np.arange(28)
            x = padded[np.arange(len(idx))[:, None, None], rows[:, :, None], cols[:, None, :]]
        return x, self.y[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._prepare()


def schedule(learning_rate: float, steps: int, warmup_steps: int = 0, final_fraction: float = 0.01):
    """Linear warm-up to ``learning_rate``, then cosine decay to ``final_fraction`` of it."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, steps - warmup_steps),
        alpha=final_fraction,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def compile_adam(net: keras.Model, learning_rate) -> keras.Model:
    """Adam on categorical cross-entropy; ``learning_rate`` may be a schedule."""
    net.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return net


class _EpochLog(keras.callbacks.Callback):
    """One readable progress line per epoch."""

    def __init__(self, what: str, epochs: int):
        super().__init__()
        self.what, self.epochs = what, epochs

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        log.info(
            "%s epoch %d/%d: loss %.4f, train acc %.4f, val acc %.4f",
            self.what,
            epoch + 1,
            self.epochs,
            logs.get("loss", math.nan),
            logs.get("accuracy", math.nan),
            logs.get("val_accuracy", math.nan),
        )


def fit(
    net: keras.Model,
    data: dict,
    train: TrainConfig,
    *,
    what: str,
    epochs: int,
    learning_rate: float,
    seed: int,
    warmup_epochs: float = 0.0,
    callbacks: list | None = None,
) -> keras.callbacks.History:
    """Train ``net`` with Adam on data["x_train"] (batches and shifts as ``train`` says), validating
    on data["x_val"]; the learning rate warms up over ``warmup_epochs``, then decays to the end."""
    steps = steps_per_epoch(data, train.batch_size)
    rate = schedule(learning_rate, steps * epochs, int(steps * warmup_epochs), train.final_lr_fraction)
    compile_adam(net, rate)
    batches = ShiftedImages(data["x_train"], data["y_train"], train.batch_size, train.shift_pixels, seed)
    val = (data["x_val"], keras.utils.to_categorical(data["y_val"], NUM_CLASSES))
    return net.fit(
        batches,
        epochs=epochs,
        validation_data=val,
        shuffle=False,
        verbose=0,
        callbacks=[*(callbacks or []), *progress.bar(what, epochs), _EpochLog(what, epochs)],
    )


def finish(
    cfg,
    stage_name: str,
    net: keras.Model,
    output: Path,
    *,
    parents: list,
    started: float,
    data: dict,
    hdf5=False,
    **extra,
) -> float:
    """What every training stage ends with: validation and test accuracy, save, the output's record."""
    from pipeline.core import stage

    val, acc = accuracy(net, data["x_val"], data["y_val"]), accuracy(net, data["x_test"], data["y_test"])
    log.info("%s: validation accuracy %.4f on %d images", output.name, val, len(data["y_val"]))
    save(net, output, hdf5=hdf5)
    stage.record(cfg, stage_name, [output], parents, started, val_accuracy=val, test_accuracy=acc, **extra)
    return val


def steps_per_epoch(data: dict, batch_size: int) -> int:
    return math.ceil(len(data["x_train"]) / batch_size)


def accuracy(net: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(net.predict(x, batch_size=1000, verbose=0), axis=1) == y))


def save(net: keras.Model, path: Path, *, hdf5: bool = False) -> None:
    """Save atomically. ``hdf5``: Keras' HDF5 format, for quantisation-aware models, whose
    QuantizeLayer cannot be reloaded from the zip format (tensorflow/model-optimization#1123);
    ``load_model`` tells the two formats apart by content, whatever the file name."""
    import warnings

    from pipeline.core import stage

    with stage.atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        net.save(tmp, save_format="h5" if hdf5 else None)


def load(path: Path) -> keras.Model:
    """A saved model of any stage (plain, pruned or quantisation-aware)."""
    import tensorflow_model_optimization as tfmot

    from pipeline.core import stage

    if not path.is_file():
        raise stage.PipelineError(f"{path} is missing: run `make all` to build it")
    with tfmot.quantization.keras.quantize_scope():
        return keras.models.load_model(path)


def kernel_size(layers) -> int:
    """Number of weights in the kernels of the prunable layers among ``layers``."""
    return sum(int(layer.kernel.shape.num_elements()) for layer in layers if isinstance(layer, PRUNABLE))


def sparsity(net: keras.Model) -> float:
    """Fraction of zeros among the weights of the prunable kernels (Conv2D and Dense)."""
    zeros = sum(int((layer.kernel.numpy() == 0).sum()) for layer in net.layers if isinstance(layer, PRUNABLE))
    return zeros / kernel_size(net.layers)


def macs(net: keras.Model) -> int:
    """Multiply-accumulates of one inference through the Conv2D and Dense layers."""
    total = 0
    for wrapper in net.layers:
        layer = getattr(wrapper, "layer", wrapper)  # QAT wraps layers
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = wrapper.output_shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return int(total)
