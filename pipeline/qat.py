"""Stage 4, qat: quantisation-aware fine-tuning of the registry's ``qat`` models.

    python -m pipeline.qat                    # every one; or name some: python -m pipeline.qat qat.keras

The models and their parents come from ``pipeline.artifacts``. A parent with pruned zeros
(``preserve_sparsity``) gets tfmot's sparsity-preserving 8-bit scheme (PQAT), so fine-tuning
cannot refill the zeros; a clustered parent (``preserve_clusters``) the cluster-preserving one
(CQAT; PCQAT with ``preserve_sparsity`` too), so fine-tuning trains its centroids and keeps each
weight on its own; the others the default 8-bit scheme. Together they let the report separate
the effects of pruning, clustering and quantisation.

They are saved in Keras' HDF5 format (under the ``.keras`` name): tfmot's quantize layer
does not survive a reload from the zip format (see ``model.save``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage

log = logging.getLogger("pipeline.qat")


def run(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    """Fine-tune ``a``'s parent quantisation-aware (``artifacts.QAT``: preserve_sparsity, epochs) -> ``a``."""
    import tensorflow_model_optimization as tfmot

    from pipeline.nn import distill, model

    recipe = a.recipe.resolved(cfg)
    parent, output, preserve_sparsity = cfg.artifacts / a.parent, cfg.artifacts / a.name, recipe.preserve_sparsity
    started = time.time()
    data = data_mod.splits(cfg)
    stage.seed_everything(cfg.seed)
    net = model.load(parent)
    combine = tfmot.experimental.combine
    if recipe.preserve_clusters:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=preserve_sparsity)
    elif preserve_sparsity:
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    if recipe.preserve_clusters or preserve_sparsity:
        qat = tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(net), scheme)
    else:
        qat = tfmot.quantization.keras.quantize_model(net)
    q = cfg.qat
    what, epochs = output.stem, recipe.epochs
    teacher = model.load(cfg.artifacts / artifacts.BASELINE) if cfg.distill.alpha else None
    d = cfg.distill
    distill.fit(
        qat,
        teacher,
        data,
        cfg.train,
        temperature=d.temperature,
        alpha=d.alpha,
        what=what,
        epochs=epochs,
        learning_rate=q.learning_rate,
        seed=cfg.seed + 2,
    )
    if recipe.preserve_clusters:
        qat = without_cluster_variables(qat, tfmot.quantization.keras.quantize_model(model.load(parent)))
    model.finish(
        cfg, "qat", qat, output, parents=[parent], started=started, data=data, hdf5=True,
        preserve_sparsity=preserve_sparsity, preserve_clusters=recipe.preserve_clusters, epochs=epochs,
    )  # fmt: skip
    return output


def without_cluster_variables(cqat, plain):
    """``plain`` (the parent under the default 8-bit scheme) holding ``cqat``'s trained weights and ranges.

    A cluster-preserving quantiser writes the clustered kernel into the layer's kernel as it trains and
    adds its centroids and indices as variables, which it rebuilds from the layer's weights when it is
    built: on reloading a saved model the weights are not loaded yet, so it finds no clusters, adds no
    variables and the saved ones do not fit. Inference needs only the kernel and the ranges, which
    are the default scheme's variables, in the same order."""
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry,
    )

    extra = (registry.CLUSTER_CENTROIDS, registry.PULLING_INDICES, registry.ORIGINAL_WEIGHTS)
    for target, source in zip(plain.layers, cqat.layers, strict=True):
        kept = [w.numpy() for w in source.weights if not any(name in w.name for name in extra)]
        target.set_weights(kept)
    return plain


def main() -> None:
    """``python -m pipeline.qat [NAME ...]``: one Make target per model, so each reruns alone."""
    stage.main_each("qat", run)


if __name__ == "__main__":
    main()
