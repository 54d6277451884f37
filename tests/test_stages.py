"""The training and export stages, each run for real on tiny data and a tiny model built in the test.

train builds the larger CNN (one epoch on a few hundred images); prune, qat and export work on a
2-layer Keras model saved as the parent. The data are synthetic and separable (class k lights up
its own band of rows), so a few steps of training already separate them: these tests check that each
stage writes a usable file and its record from the registry-style entry it is given, not accuracy.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest

from pipeline import artifacts, config, export, prune, qat, train
from pipeline import data as data_mod
from pipeline.core import stage
from pipeline.nn import model
from runtime.metadata import ModelSpec
from tests.separable import separable

N = 300  # images per split


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("stages")


@pytest.fixture
def cfg(folder, monkeypatch) -> config.Config:
    splits = dict(zip(("x_train", "y_train"), separable(N, 0), strict=True))
    splits |= dict(zip(("x_val", "y_val"), separable(N, 1), strict=True))
    splits |= dict(zip(("x_test", "y_test"), separable(N, 2), strict=True))
    monkeypatch.setattr(data_mod, "splits", lambda cfg: splits)
    smoke = config.load("smoke", folder, overrides=[])
    return dataclasses.replace(
        smoke,
        prune=dataclasses.replace(smoke.prune, skip_layers=("conv1",)),  # a set override: no sensitivity.json
        export=dataclasses.replace(smoke.export, representative_samples=32),
    )


@pytest.fixture(scope="module")
def tiny_parent(folder) -> str:
    import tf_keras as keras

    layers = keras.layers
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(4, 3, activation="relu", name="conv1"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ]
    )
    model.compile_adam(net, 1e-3)
    model.save(net, folder / "tiny.keras")
    return "tiny.keras"


def record(cfg: config.Config, name: str) -> dict:
    return json.loads(stage.record_path(cfg, cfg.artifacts / name).read_text())


def test_train_writes_the_larger_cnn_and_its_record(cfg):
    a = artifacts.Artifact("trained.keras", None, "fp32", artifacts.Train(), "")
    path = train.run(cfg, a)
    assert model.load(path).count_params() == model.build().count_params()
    assert record(cfg, a.name)["stage"] == "train" and 0 <= record(cfg, a.name)["val_accuracy"] <= 1


def test_prune_reaches_the_entrys_own_sparsity(cfg, tiny_parent):
    a = artifacts.Artifact("tiny_pruned.keras", tiny_parent, "fp32", artifacts.MagnitudePrune(final_sparsity=0.6), "")
    pruned = model.load(prune.run(cfg, a))
    kernels = [layer.kernel.numpy() for layer in pruned.layers if isinstance(layer, model.PRUNABLE)]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert zeros >= 0.6 - 0.005 and record(cfg, a.name)["sparsity"] == pytest.approx(zeros, abs=1e-3)


def test_qat_fine_tunes_for_the_entrys_epochs(cfg, tiny_parent):
    a = artifacts.Artifact("tiny_qat.keras", tiny_parent, "fp32", artifacts.QAT(epochs=1), "")
    net = model.load(qat.run(cfg, a))
    assert any("quant" in layer.name for layer in net.layers)
    assert record(cfg, a.name)["epochs"] == 1


def test_export_writes_int8_tflite_and_an_onnx_model_that_agrees_with_keras(cfg, tiny_parent):
    from ai_edge_litert.interpreter import Interpreter

    int8 = artifacts.Artifact("tiny_int8.tflite", tiny_parent, "int8", artifacts.TFLite(calibrate=True), "")
    it = Interpreter(model_path=str(export.export(cfg, int8)))
    assert it.get_input_details()[0]["dtype"] == np.int8

    fp32 = artifacts.Artifact("tiny_fp32.onnx", tiny_parent, "fp32", artifacts.Tf2Onnx(), "")
    path = export.export(cfg, fp32)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    spec = ModelSpec.from_props({p.key: p.value for p in m.metadata_props})
    assert (spec.name, spec.source) == (fp32.name, tiny_parent)
    import onnxruntime as ort

    x = data_mod.splits(cfg)["x_test"][:50]
    ours = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    theirs = model.load(cfg.artifacts / tiny_parent).predict(x, verbose=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert record(cfg, fp32.name)["artifact"]["recipe"] == "tf2onnx"
