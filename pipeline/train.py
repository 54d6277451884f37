"""Stage 2, train: the larger CNN on MNIST -> the registry's ``train`` artifacts (``baseline.keras``).

    python -m pipeline.train [NAME ...]

Adam with a linear warm-up and cosine decay, and +-2 px random shifts of the training
images (config ``train``). Seeded and deterministic; the validation split is held out of the
training images.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage

log = logging.getLogger("pipeline.train")


def run(cfg: config_mod.Config, a: artifacts.Artifact) -> Path:
    from pipeline.nn import model

    output, started = cfg.artifacts / a.name, time.time()
    stage.seed_everything(cfg.seed)
    data = data_mod.splits(cfg)
    t = cfg.train
    net = model.build()
    log.info(
        "training on %d images (%d held out for validation), %d epochs",
        len(data["x_train"]),
        len(data["x_val"]),
        t.epochs,
    )
    schedule = {"learning_rate": t.learning_rate, "warmup_epochs": t.warmup_epochs}
    model.fit(net, data, t, what="train", epochs=t.epochs, seed=cfg.seed, **schedule)
    parents = [data_mod.cache_path(cfg)]
    model.finish(cfg, "train", net, output, parents=parents, started=started, data=data, params=net.count_params())
    return output


def main() -> None:
    stage.main_each("train", run)


if __name__ == "__main__":
    main()
