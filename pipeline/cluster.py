"""Stage 3c, cluster: tfmot weight clustering -> the registry's ``cluster`` artifacts.

    python -m pipeline.cluster [NAME ...]      # e.g. python -m pipeline.cluster structured_clustered.keras

Each artifact's recipe (``artifacts.Cluster``) gives k, whether Conv2D kernels are clustered per
output channel, how the centroids start and whether the parent's zeros are kept; fine-tuning
comes from config ``cluster``. tfmot's ``cluster_weights`` replaces every Conv2D and Dense kernel
by k trainable centroids and each weight's index into them; fine-tuning trains the centroids
(each weight moves with its own), and ``strip_clustering`` leaves a plain model whose kernels
hold only those values. A kernel with fewer weights per channel than k is left as it is.

The clustered models are float: CQAT and PCQAT (the qat stage, ``QAT(preserve_clusters=True)``)
take them to int8 without losing their centroids.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage

log = logging.getLogger("pipeline.cluster")


def cluster(net, recipe: artifacts.Cluster, data: dict, cfg: config_mod.Config, what: str, *, teacher=None):
    """``net`` clustered as ``recipe`` (resolved) says, fine-tuned as config ``cluster`` says, stripped.
    With a ``teacher``, fine-tuning distils from it (``recipe.distill_alpha``, ``cfg.distill.temperature``).

    ``net`` must be a copy (e.g. loaded from disk): cluster_weights wraps the very layer objects it is
    given, so clustering a model in memory would change the original too.
    """
    import tensorflow_model_optimization as tfmot

    from pipeline.nn import distill

    clustering = tfmot.clustering.keras
    init = clustering.CentroidInitialization[recipe.init.upper()]
    # The public cluster_weights passes these two keywords on to tfmot's implementation.
    wrapped = clustering.cluster_weights(
        net,
        number_of_clusters=recipe.clusters,
        cluster_centroids_init=init,
        preserve_sparsity=recipe.preserve_sparsity,
        cluster_per_channel=recipe.per_channel,
    )
    c = cfg.cluster
    log.info(
        "%s: %d clusters%s (%s), sparsity %s, %d epochs, distillation weight %g",
        what,
        recipe.clusters,
        " per conv channel" if recipe.per_channel else "",
        recipe.init,
        "kept" if recipe.preserve_sparsity else "not kept",
        recipe.epochs,
        recipe.distill_alpha,
    )
    distill.fit(
        wrapped,
        teacher,
        data,
        cfg.train,
        temperature=cfg.distill.temperature,
        alpha=recipe.distill_alpha,
        what=what,
        epochs=recipe.epochs,
        learning_rate=c.learning_rate,
        seed=cfg.seed + 3,
    )
    return clustering.strip_clustering(wrapped)


def kernels(net) -> dict[str, dict]:
    """Distinct values of each Conv2D and Dense kernel, in all and per output channel."""
    from pipeline.measure import palette
    from pipeline.nn import model

    return {x.name: palette.layer(x.kernel.numpy(), -1) for x in net.layers if isinstance(x, model.PRUNABLE)}


def run(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    """``a``'s parent clustered as ``a``'s recipe says (``artifacts.Cluster``), fine-tuned -> ``a``."""
    from pipeline.nn import model

    recipe = a.recipe.resolved(cfg)
    parent, output, started = cfg.artifacts / a.parent, cfg.artifacts / a.name, time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    net = model.load(parent)
    sparsity_before = model.sparsity(net)
    teacher = model.load(cfg.artifacts / artifacts.BASELINE) if recipe.distill_alpha else None
    clustered = cluster(net, recipe, data, cfg, a.stem, teacher=teacher)
    layers = kernels(clustered)
    for name, k in layers.items():
        log.info("%s: %s holds %d distinct values, at most %d per channel", a.name, name, k["distinct"],
                 k["distinct_per_channel"])  # fmt: skip
    model.finish(
        cfg, "cluster", clustered, output, parents=[parent], started=started, data=data,
        clusters=recipe.clusters, per_channel=recipe.per_channel, init=recipe.init,
        preserve_sparsity=recipe.preserve_sparsity, epochs=recipe.epochs,
        distill={"alpha": recipe.distill_alpha, "temperature": cfg.distill.temperature},
        sparsity_before=sparsity_before, sparsity=model.sparsity(clustered), layers=layers,
    )  # fmt: skip
    return output


def main() -> None:
    stage.main_each("cluster", run)


if __name__ == "__main__":
    main()
