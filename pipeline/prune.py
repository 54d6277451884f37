"""Stage 3, prune: magnitude pruning of a copy of the baseline -> ``artifacts/pruned.keras``.

    python -m pipeline.prune

tfmot's ``prune_low_magnitude`` zeroes the smallest weights of every Conv2D and Dense
kernel, ramping sparsity polynomially from ``initial_sparsity`` to ``final_sparsity``
while fine-tuning; ``strip_pruning`` then leaves a plain model whose kernels hold the zeros.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline import stage

log = logging.getLogger("pipeline.prune")


def run(cfg: config_mod.Config, baseline: Path | None = None, output: Path | None = None) -> Path:
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from pipeline import model

    baseline = baseline or cfg.artifacts / "baseline.keras"
    output = output or cfg.artifacts / "pruned.keras"
    started = time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    p = cfg.prune
    # A model loaded from disk is its own copy: prune_low_magnitude wraps the very layer
    # objects it is given, so pruning a model in memory would change the baseline too.
    net = model.load(baseline)
    steps = model.steps_per_epoch(data, cfg.train.batch_size) * p.epochs
    targets = [layer for layer in net.layers if isinstance(layer, model.PRUNABLE) and layer.name not in p.skip_layers]
    scale = model.kernel_size(net.layers) / model.kernel_size(targets)
    if p.final_sparsity * scale >= 1:
        raise stage.PipelineError(f"prune.final_sparsity={p.final_sparsity} cannot be reached without {p.skip_layers}")
    sparsity = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=p.initial_sparsity * scale,
        final_sparsity=p.final_sparsity * scale,
        begin_step=0,
        end_step=max(1, int(steps * p.ramp_fraction)),
        frequency=p.frequency,
    )

    def wrap(layer):
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sparsity) if layer in targets else layer

    pruning = keras.models.clone_model(net, clone_function=wrap)
    model.compile_adam(pruning, model.schedule(p.learning_rate, steps))
    names = ", ".join(x.name for x in targets)
    log.info(
        "pruning %s to %.1f%% (%.0f%% of all kernels) over %d epochs",
        names,
        100 * p.final_sparsity * scale,
        100 * p.final_sparsity,
        p.epochs,
    )
    model.fit(
        pruning,
        data,
        what="prune",
        epochs=p.epochs,
        batch_size=cfg.train.batch_size,
        shift=cfg.train.shift_pixels,
        seed=cfg.seed + 1,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    pruned = tfmot.sparsity.keras.strip_pruning(pruning)
    achieved = model.sparsity(pruned)
    acc = model.accuracy(pruned, data["x_test"], data["y_test"])
    log.info("sparsity %.4f of prunable weights, test accuracy %.4f", achieved, acc)
    if achieved < p.final_sparsity - 0.005:
        raise stage.PipelineError(f"pruning reached only {achieved:.3f} sparsity, configured {p.final_sparsity}")
    model.save(pruned, output)
    stage.record(cfg, "prune", [output], [baseline], started, test_accuracy=acc, sparsity=achieved)
    return output


def main() -> None:
    stage.main("prune", run)


if __name__ == "__main__":
    main()
