"""Stage 4, qat: quantisation-aware fine-tuning of the registry's ``qat`` models.

    python -m pipeline.qat                    # every one; or name some: python -m pipeline.qat qat.keras

The models and their parents come from ``pipeline.artifacts``. A parent with pruned zeros
(``preserve_sparsity``) gets tfmot's sparsity-preserving 8-bit scheme (PQAT), so fine-tuning
cannot refill the zeros; the others the default 8-bit scheme. Together they let the report
separate the effects of pruning and of quantisation.

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
    if preserve_sparsity:
        annotated = tfmot.quantization.keras.quantize_annotate_model(net)
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
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
    model.finish(
        cfg, "qat", qat, output, parents=[parent], started=started, data=data, hdf5=True,
        preserve_sparsity=preserve_sparsity, epochs=epochs,
    )  # fmt: skip
    return output


def main() -> None:
    """``python -m pipeline.qat [NAME ...]``: one Make target per model, so each reruns alone."""
    stage.main_each("qat", run)


if __name__ == "__main__":
    main()
