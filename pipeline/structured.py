"""Stage 3b, structured: remove whole filters and units -> the registry's ``structured`` artifacts.

    python -m pipeline.structured [NAME ...]

Unstructured zeros shrink files but not the work of dense kernels. Here the parent loses
whole conv filters and Dense units, those with the smallest L1 norm, layer by layer (a
removed filter also removes its input channel from the next layer), so the model really
does fewer multiply-adds in every runtime. The widths are the recipe's (``artifacts.Narrow``,
default config ``structured.widths``; None derives them from the sensitivity). The narrower
model is then fine-tuned as config ``structured.fine_tune`` says; a sparsity above 0 there
also magnitude-prunes its kernels while it trains (the default does not: stored zeros shrink
gzip, not flash).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.config import LAYERS
from pipeline.core import stage
from pipeline.nn import allocate

log = logging.getLogger("pipeline.structured")


def strongest(kernel: np.ndarray, keep: int) -> np.ndarray:
    """Indices (ascending) of the ``keep`` output channels (last axis) with the largest L1 norm."""
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return np.sort(np.argsort(-norms, kind="stable")[:keep])


def narrow(net, widths: tuple[int, int, int, int]):
    """A model of ``widths`` holding the baseline's strongest filters and units."""
    from pipeline.nn import model

    (c1, b1), (c2, b2), (d1, e1), (d2, e2), (out, bout) = (net.get_layer(name).get_weights() for name in LAYERS)
    if any(w > full for w, full in zip(widths, model.WIDTHS, strict=True)):
        raise stage.PipelineError(f"structured.widths={widths} must not exceed the baseline's {model.WIDTHS}")
    f1, f2, u1, u2 = widths
    k = strongest(c1, f1)
    c1, b1, c2 = c1[..., k], b1[k], c2[:, :, k, :]
    k = strongest(c2, f2)
    c2, b2 = c2[..., k], b2[k]
    h, w, c = net.get_layer("pool2").output_shape[1:]  # Flatten orders dense1's rows as (h, w, channel)
    d1 = d1.reshape(h, w, c, -1)[:, :, k, :].reshape(h * w * len(k), -1)
    k = strongest(d1, u1)
    d1, e1, d2 = d1[:, k], e1[k], d2[k]
    k = strongest(d2, u2)
    d2, e2, out = d2[:, k], e2[k], out[k]
    small = model.build(widths)
    for name, weights in zip(LAYERS, [[c1, b1], [c2, b2], [d1, e1], [d2, e2], [out, bout]], strict=True):
        small.get_layer(name).set_weights(weights)
    return small


def derived_widths(s: config_mod.StructuredConfig, sensitivity: Path) -> tuple[int, int, int, int]:
    """The widths allocate.widths derives from the sensitivity analysis under the config's budgets."""
    import json

    if not sensitivity.is_file():
        raise stage.PipelineError(f"{sensitivity} is missing: run `make sensitivity` (or set structured.widths)")
    try:
        return allocate.widths(
            json.loads(sensitivity.read_text()), s.max_parameters, s.max_macs, s.max_activation_bytes
        )
    except ValueError as e:
        raise stage.PipelineError(str(e)) from None


def run(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    """``a``'s parent narrowed to ``a``'s widths (default: config ``structured.widths``), fine-tuned."""
    from pipeline import prune
    from pipeline.nn import model

    widths_set = a.recipe.resolved(cfg).widths
    parent, output, started = cfg.artifacts / a.parent, cfg.artifacts / a.name, time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    s = cfg.structured
    sensitivity = cfg.artifacts / "sensitivity.json"
    widths = widths_set or derived_widths(s, sensitivity)
    small = narrow(model.load(parent), widths)
    before = model.accuracy(small, data["x_val"], data["y_val"])
    log.info(
        "widths %s -> %s (%s), MACs %d -> %d; validation accuracy before fine-tuning %.4f",
        model.WIDTHS,
        widths,
        "derived from the sensitivity" if widths_set is None else "set",
        model.macs(model.build()),
        model.macs(small),
        before,
    )
    sizes = {x.name: int(x.kernel.shape.num_elements()) for x in small.layers if isinstance(x, model.PRUNABLE)}
    try:
        sparsities = allocate.uniform_sparsities(sizes, s.fine_tune.final_sparsity, s.fine_tune.skip_layers or ())
    except ValueError as e:
        raise stage.PipelineError(str(e)) from None
    teacher = model.load(parent) if cfg.distill.alpha else None
    tuned = prune.magnitude_prune(small, data, s.fine_tune, cfg, a.stem, sparsities=sparsities, teacher=teacher)
    log.info("%s: sparsity %.4f, %d parameters", a.name, model.sparsity(tuned), tuned.count_params())
    model.finish(
        cfg,
        "structured",
        tuned,
        output,
        parents=[parent, sensitivity] if widths_set is None else [parent],
        started=started,
        data=data,
        widths=list(widths),
        widths_derived=widths_set is None,
        macs=model.macs(tuned),
        sparsity=model.sparsity(tuned),
        val_accuracy_before_fine_tuning=before,
    )
    return output


def main() -> None:
    stage.main_each("structured", run)


if __name__ == "__main__":
    main()
