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

from pipeline import artifacts, stage
from pipeline import config as config_mod
from pipeline import data as data_mod

log = logging.getLogger("pipeline.qat")


def quantise_aware(cfg: config_mod.Config, data: dict, a: artifacts.Artifact) -> float:
    """Fine-tune ``a``'s parent quantisation-aware (``a.params``: preserve_sparsity, epochs) -> ``a``."""
    import tensorflow_model_optimization as tfmot

    from pipeline import distill, model

    parent, output, preserve_sparsity = cfg.artifacts / a.parent, cfg.artifacts / a.name, a.params["preserve_sparsity"]
    started = time.time()
    stage.seed_everything(cfg.seed)
    net = model.load(parent)
    if preserve_sparsity:
        annotated = tfmot.quantization.keras.quantize_annotate_model(net)
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    else:
        qat = tfmot.quantization.keras.quantize_model(net)
    q = cfg.qat
    what, epochs = output.stem, a.params.get("epochs", q.epochs)
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
    val, acc = model.accuracy(qat, data["x_val"], data["y_val"]), model.accuracy(qat, data["x_test"], data["y_test"])
    log.info("%s: validation accuracy %.4f", what, val)
    model.save(qat, output, hdf5=True)
    stage.record(
        cfg,
        "qat",
        [output],
        [parent],
        started,
        val_accuracy=val,
        test_accuracy=acc,
        preserve_sparsity=preserve_sparsity,
        epochs=epochs,
    )
    return val


def run(cfg: config_mod.Config, names: list[str] | None = None) -> list[Path]:
    """Fine-tune the registry's QAT models ``names`` (default: all of them) quantisation-aware."""
    known = {a.name: a for a in artifacts.of_stage("qat")}
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise stage.PipelineError(f"unknown QAT model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    data = data_mod.splits(cfg)
    outputs = []
    for name in names or known:
        outputs.append(cfg.artifacts / known[name].name)
        quantise_aware(cfg, data, known[name])
    return outputs


def main() -> None:
    """``python -m pipeline.qat [NAME ...]``: one Make target per model, so each reruns alone."""
    stage.main("qat", run, takes_names=True)


if __name__ == "__main__":
    main()
