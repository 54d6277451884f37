"""Stage 3, prune: magnitude pruning of a copy of the baseline -> ``artifacts/pruned.keras``.

    python -m pipeline.prune

tfmot's ``prune_low_magnitude`` zeroes the smallest weights of the chosen Conv2D and Dense
kernels, ramping sparsity polynomially from ``initial_sparsity`` to ``final_sparsity``
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


def magnitude_prune(net, data: dict, p: config_mod.PruneConfig, cfg: config_mod.Config, what: str, *, teacher=None):
    """Fine-tune ``net`` while pruning it to ``p.final_sparsity`` of all its kernel weights; return it stripped.
    With a ``teacher``, fine-tuning distils from it (``cfg.distill``: temperature and weight).

    ``net`` must be a copy (e.g. loaded from disk): prune_low_magnitude wraps the very layer
    objects it is given, so pruning a model in memory would change the original too.
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from pipeline import model

    steps = model.steps_per_epoch(data, cfg.train.batch_size) * p.epochs
    targets = [layer for layer in net.layers if isinstance(layer, model.PRUNABLE) and layer.name not in p.skip_layers]
    scale = model.kernel_size(net.layers) / model.kernel_size(targets)
    if p.final_sparsity * scale >= 1:
        raise stage.PipelineError(f"final_sparsity={p.final_sparsity} cannot be reached without {p.skip_layers}")
    # tfmot updates the masks only on multiples of `frequency`: the ramp must end on one,
    # or the last update falls short of final_sparsity.
    frequency = max(1, min(p.frequency, steps // 2))
    end_step = max(frequency, int(steps * p.ramp_fraction) // frequency * frequency)
    sparsity = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=p.initial_sparsity * scale,
        final_sparsity=p.final_sparsity * scale,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )

    def wrap(layer):
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sparsity) if layer in targets else layer

    pruning = keras.models.clone_model(net, clone_function=wrap)
    names = ", ".join(x.name for x in targets)
    log.info(
        "%s: pruning %s to %.1f%% (%.0f%% of all kernels) over %d epochs",
        what,
        names,
        100 * p.final_sparsity * scale,
        100 * p.final_sparsity,
        p.epochs,
    )
    from pipeline import distill

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
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    pruned = tfmot.sparsity.keras.strip_pruning(pruning)
    achieved = model.sparsity(pruned)
    if achieved < p.final_sparsity - 0.005:
        raise stage.PipelineError(
            f"{what}: pruning reached only {achieved:.3f} sparsity, configured {p.final_sparsity}"
        )
    return pruned


def run(cfg: config_mod.Config, baseline: Path | None = None, output: Path | None = None) -> Path:
    from pipeline import model

    baseline = baseline or cfg.artifacts / "baseline.keras"
    output = output or cfg.artifacts / "pruned.keras"
    started = time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    pruned = magnitude_prune(model.load(baseline), data, cfg.prune, cfg, "prune")
    val, acc = (
        model.accuracy(pruned, data["x_val"], data["y_val"]),
        model.accuracy(pruned, data["x_test"], data["y_test"]),
    )
    achieved = model.sparsity(pruned)
    log.info("sparsity %.4f of prunable weights, validation accuracy %.4f", achieved, val)
    model.save(pruned, output)
    stage.record(cfg, "prune", [output], [baseline], started, val_accuracy=val, test_accuracy=acc, sparsity=achieved)
    return output


def main() -> None:
    stage.main("prune", run)


if __name__ == "__main__":
    main()
