"""Weight clustering, CQAT and PCQAT, each run for real on a tiny model built in the test.

The cluster stage on a small conv + dense model (k = 4), then the qat stage's cluster-preserving
schemes and the int8 TFLite export: the kernels hold at most k values per conv channel and per dense
kernel at every step, the zeros of a pruned parent stay zero, and the registry's clustered int8 files
of the smoke pipeline keep their k values too.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline import artifacts, cluster, config, export, qat
from pipeline import data as data_mod
from pipeline.core import stage
from pipeline.measure import palette, runners
from pipeline.nn import model
from tests.separable import separable

K = 4  # centroids: below the 9 weights of a 3x3 single-input conv channel, so every layer is clustered


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture
def cfg(folder, monkeypatch) -> config.Config:
    splits = {}
    for i, split in enumerate(("train", "val", "test")):
        splits |= dict(zip((f"x_{split}", f"y_{split}"), separable(100, i), strict=True))
    monkeypatch.setattr(data_mod, "splits", lambda cfg: splits)
    smoke = config.load("smoke", folder, overrides=[])
    return dataclasses.replace(smoke, export=dataclasses.replace(smoke.export, representative_samples=32))


def parent(folder, name: str, zeros: bool = False) -> str:
    """A trained-looking conv + dense model saved as ``name``; ``zeros``: half of every kernel pruned."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            layers.Conv2D(6, 3, strides=3, activation="relu", name="conv1"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ]
    )
    if zeros:
        for layer in (net.get_layer("conv1"), net.get_layer("probabilities")):
            kernel, bias = layer.get_weights()
            kernel[np.abs(kernel) < np.median(np.abs(kernel))] = 0.0
            layer.set_weights([kernel, bias])
    model.save(net, folder / name)
    return name


def kernels(net) -> dict[str, np.ndarray]:
    return {x.name: x.kernel.numpy() for x in net.layers if isinstance(x, model.PRUNABLE)}


def test_clustering_leaves_k_values_per_conv_channel_and_per_dense_kernel(cfg, folder):
    a = artifacts.Artifact("c.keras", parent(folder, "p.keras"), "fp32", artifacts.Cluster(clusters=K, epochs=1), "")
    found = kernels(model.load(cluster.run(cfg, a)))
    assert (
        palette.layer(found["conv1"], -1)["distinct_per_channel"] <= K < palette.layer(found["conv1"], -1)["distinct"]
    )
    assert palette.layer(found["probabilities"], -1)["distinct"] <= K
    record = json.loads(stage.record_path(cfg, cfg.artifacts / a.name).read_text())
    assert record["clusters"] == K and record["layers"]["probabilities"]["bits"] == 2


def test_sparsity_preserving_clustering_keeps_every_zero(cfg, folder):
    name = parent(folder, "sparse.keras", zeros=True)
    recipe = artifacts.Cluster(clusters=K, init="linear", preserve_sparsity=True, epochs=1)
    a = artifacts.Artifact("sparse_c.keras", name, "fp32", recipe, "")
    before, after = kernels(model.load(folder / name)), kernels(model.load(cluster.run(cfg, a)))
    for layer, kernel in before.items():
        assert np.all(after[layer][kernel == 0] == 0), layer
        assert palette.layer(after[layer], -1)["distinct_per_channel"] <= K + 1  # k centroids and the zero


@pytest.mark.parametrize("sparse", [False, True], ids=["cqat", "pcqat"])
def test_cluster_preserving_qat_gives_an_int8_file_with_k_values_per_channel(cfg, folder, sparse):
    name = parent(folder, f"q{int(sparse)}.keras", zeros=sparse)
    recipe = artifacts.Cluster(clusters=K, init="linear" if sparse else "kmeans_plus_plus", preserve_sparsity=sparse)
    clustered = artifacts.Artifact(f"q{int(sparse)}_c.keras", name, "fp32", dataclasses.replace(recipe, epochs=1), "")
    cluster.run(cfg, clustered)
    scheme = artifacts.QAT(preserve_sparsity=sparse, preserve_clusters=True, epochs=1)
    cqat = artifacts.Artifact(f"q{int(sparse)}_cqat.keras", clustered.name, "fp32", scheme, "")
    qat.run(cfg, cqat)  # saved without the cluster variables, so it reloads
    keras_layers = runners.open_model(cfg.artifacts / cqat.name, "keras").weights()["palette"]["layers"]
    assert all(x["distinct_per_channel"] <= K + sparse for x in keras_layers.values()), keras_layers
    int8 = artifacts.Artifact(f"q{int(sparse)}_int8.tflite", cqat.name, "int8", artifacts.TFLite(), "")
    found = runners.open_model(export.export(cfg, int8), "tflite").weights()
    layers = found["palette"]["layers"]
    assert set(layers) == {"conv1", "probabilities"}
    limit = K + 1 if sparse else K  # PCQAT keeps the zero beside the k centroids
    assert all(x["distinct_per_channel"] <= limit for x in layers.values()), layers
    assert found["sparsity"] >= (0.45 if sparse else 0.0)


def test_an_unknown_centroid_initialisation_fails_when_the_entry_is_made():
    with pytest.raises(ValueError, match="kmeans_plus_plus"):
        artifacts.Cluster(init="kmeans")


CLUSTERED_INT8 = [
    a
    for a in artifacts.ARTIFACTS
    if a.format == "tflite"
    and a.precision == "int8"
    and getattr(artifacts.get(a.parent).recipe, "preserve_clusters", 0)
]


@pytest.mark.parametrize("a", CLUSTERED_INT8, ids=lambda a: a.name)
def test_the_clustered_int8_files_keep_k_values_per_channel(smoke_artifacts, smoke_config, a):
    clustered = artifacts.get(artifacts.lineage(a.name)[2])  # int8 file <- CQAT model <- clustered model
    recipe = clustered.recipe.resolved(smoke_config)
    layers = runners.open_model(smoke_artifacts / a.name, "tflite").weights()["palette"]["layers"]
    limit = recipe.clusters + (1 if recipe.preserve_sparsity else 0)
    assert all(x["distinct_per_channel"] <= limit for x in layers.values()), layers
