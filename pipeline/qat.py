"""Stage 4, qat: quantisation-aware fine-tuning -> ``pruned_qat.keras`` and ``qat.keras``.

    python -m pipeline.qat                # all three; or name some: python -m pipeline.qat qat

Two models, so the report can separate the effects of pruning and of quantisation:
- ``pruned_qat.keras``: the pruned model with tfmot's sparsity-preserving 8-bit scheme
  (PQAT), so fine-tuning cannot refill the zeros;
- ``qat.keras``: the baseline with the default 8-bit scheme (plain QAT);
- ``structured_qat.keras``: the structurally pruned model, sparsity-preserving like the first.

Both are saved in Keras' HDF5 format (under the ``.keras`` name): tfmot's quantize layer
does not survive a reload from the zip format (see ``model.save``).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline import stage

log = logging.getLogger("pipeline.qat")


def quantise_aware(cfg: config_mod.Config, data: dict, parent: Path, output: Path, preserve_sparsity: bool) -> float:
    import tensorflow_model_optimization as tfmot

    from pipeline import model

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
    what = output.stem
    model.fit(qat, data, cfg.train, what=what, epochs=q.epochs, learning_rate=q.learning_rate, seed=cfg.seed + 2)
    acc = model.accuracy(qat, data["x_test"], data["y_test"])
    log.info("%s: test accuracy %.4f", what, acc)
    model.save(qat, output, hdf5=True)
    stage.record(cfg, "qat", [output], [parent], started, test_accuracy=acc, preserve_sparsity=preserve_sparsity)
    return acc


# output name: (parent, whether the parent's zeros must survive fine-tuning)
MODELS = {
    "pruned_qat": ("pruned.keras", True),
    "qat": ("baseline.keras", False),
    "structured_qat": ("structured.keras", True),
}


def run(cfg: config_mod.Config, names: list[str] | None = None) -> list[Path]:
    """Fine-tune the models ``names`` (default: all of MODELS) quantisation-aware."""
    unknown = sorted(set(names or []) - set(MODELS))
    if unknown:
        raise stage.PipelineError(f"unknown QAT model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    data = data_mod.splits(cfg)
    outputs = []
    for name in names or MODELS:
        parent, preserve_sparsity = MODELS[name]
        outputs.append(cfg.artifacts / f"{name}.keras")
        quantise_aware(cfg, data, cfg.artifacts / parent, outputs[-1], preserve_sparsity)
    return outputs


def main() -> None:
    """``python -m pipeline.qat [NAME ...]``: one Make target per model, so each reruns alone."""
    names = sys.argv[1:]
    stage.main("qat", lambda cfg: run(cfg, names))


if __name__ == "__main__":
    main()
