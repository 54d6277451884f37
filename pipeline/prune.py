"""Stage 3, prune: magnitude pruning of a copy of the parent -> the registry's ``prune`` artifacts (``pruned.keras``).

    python -m pipeline.prune [NAME ...]

Each artifact's recipe (``artifacts.MagnitudePrune``) gives its final sparsity (default: config
``prune.final_sparsity``); the schedule and fine-tuning come from config ``prune``.

tfmot's ``prune_low_magnitude`` zeroes the smallest weights of the chosen Conv2D and Dense
kernels, ramping sparsity polynomially from ``initial_sparsity`` to ``final_sparsity``
while fine-tuning; ``strip_pruning`` then leaves a plain model whose kernels hold the zeros.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage

log = logging.getLogger("pipeline.prune")


def layer_sparsities(net, p: config_mod.PruneConfig, sensitivity: Path) -> dict[str, float]:
    """Final kernel sparsity per layer: derived from the sensitivity analysis, or the skip_layers override."""
    import json

    from pipeline.nn import allocate, model

    try:
        if p.skip_layers is not None:
            sizes = {x.name: int(x.kernel.shape.num_elements()) for x in net.layers if isinstance(x, model.PRUNABLE)}
            return allocate.uniform_sparsities(sizes, p.final_sparsity, p.skip_layers)
        if not sensitivity.is_file():
            raise stage.PipelineError(f"{sensitivity} is missing: run `make sensitivity` (or set prune.skip_layers)")
        return allocate.sparsities(json.loads(sensitivity.read_text()), p.final_sparsity)
    except ValueError as e:
        raise stage.PipelineError(str(e)) from None


def magnitude_prune(
    net, data: dict, p: config_mod.PruneConfig, cfg: config_mod.Config, what: str, *, sparsities: dict, teacher=None
):
    """Fine-tune ``net`` while pruning each layer of ``sparsities`` to its sparsity; return it stripped.
    With a ``teacher``, fine-tuning distils from it (``cfg.distill``); with no sparsities, it only fine-tunes.

    ``net`` must be a copy (e.g. loaded from disk): prune_low_magnitude wraps the very layer
    objects it is given, so pruning a model in memory would change the original too.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from pipeline.nn import distill, model

    steps = model.steps_per_epoch(data, cfg.train.batch_size) * p.epochs
    # tfmot updates the masks only on multiples of `frequency`: the ramp must end on one,
    # or the last update falls short of final_sparsity.
    frequency = max(1, min(p.frequency, steps // 2))
    end_step = max(frequency, int(steps * p.ramp_fraction) // frequency * frequency)
    start = p.initial_sparsity / p.final_sparsity if p.final_sparsity else 0.0  # every layer ramps from this share

    def wrap(layer):
        if layer.name not in sparsities:
            return layer
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=start * sparsities[layer.name],
            final_sparsity=sparsities[layer.name],
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruning = keras.models.clone_model(net, clone_function=wrap) if sparsities else net
    shown = ", ".join(f"{name} to {s:.1%}" for name, s in sparsities.items()) or "no pruning"
    log.info("%s: %s (%.0f%% of all kernels) over %d epochs", what, shown, 100 * p.final_sparsity, p.epochs)
    distill.fit(
        pruning,
        teacher,
        data,
        cfg.train,
        temperature=cfg.distill.temperature,
        alpha=cfg.distill.alpha,
        what=what,
        epochs=p.epochs,
        learning_rate=p.learning_rate,
        seed=cfg.seed + 1,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()] if sparsities else [],
    )
    pruned = tfmot.sparsity.keras.strip_pruning(pruning) if sparsities else pruning
    achieved = model.sparsity(pruned)
    if achieved < p.final_sparsity - 0.005:
        raise stage.PipelineError(
            f"{what}: pruning reached only {achieved:.3f} sparsity, configured {p.final_sparsity}"
        )
    return pruned


def run(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    """``a``'s parent magnitude-pruned to ``a``'s final_sparsity, the schedule from config ``prune``."""
    from pipeline.nn import model

    recipe = a.recipe.resolved(cfg)
    p = dataclasses.replace(cfg.prune, final_sparsity=recipe.final_sparsity)
    parent, output, started = cfg.artifacts / a.parent, cfg.artifacts / a.name, time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    net = model.load(parent)
    sensitivity = cfg.artifacts / "sensitivity.json"
    per_layer = layer_sparsities(net, p, sensitivity)
    teacher = model.load(parent) if cfg.distill.alpha else None  # a separate copy: pruning wraps net's layers
    pruned = magnitude_prune(net, data, p, cfg, a.stem, sparsities=per_layer, teacher=teacher)
    achieved = model.sparsity(pruned)
    log.info("%s: sparsity %.4f of prunable weights", a.name, achieved)
    parents = [parent, sensitivity] if p.skip_layers is None else [parent]
    model.finish(
        cfg, "prune", pruned, output, parents=parents, started=started, data=data,
        sparsity=achieved, layer_sparsities=per_layer,
    )  # fmt: skip
    return output


def main() -> None:
    stage.main_each("prune", run)


if __name__ == "__main__":
    main()
