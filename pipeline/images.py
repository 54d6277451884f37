"""Stage images: the runtime's image path on user-style images -> ``images.json`` (read by the report).

    python -m pipeline.images      # after deploy: it measures the deployed model.onnx

Builds the user-style sets of ``pipeline.measure.user_images`` from the first MNIST test digits (photos,
scans, drawings, white on black, typeset, tight crops) in a scratch folder and runs
``runtime.bench_images`` on them: per set, the median time of Pillow's decode and of ``to_mnist`` of
each file, side by side in one loop, their ratio and the deployed model's accuracy; then images/s
through ``Classifier.classify_many`` with one job and with every core. Timings are this machine's,
taken while nothing else of the pipeline runs (it comes after the benchmark); compare ratios.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from pipeline import config as config_mod
from pipeline import data
from pipeline.core import stage
from pipeline.measure import user_images
from runtime import bench_images
from runtime.classifier import Classifier

log = logging.getLogger("pipeline.images")

PER_SET = 100  # images per set: a median that holds to a few per cent, in about a minute
REPEAT = 3  # runs of each measurement per image; the best counts


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    mnist = data.load(data.cache_path(cfg))
    model = cfg.artifacts / "model.onnx"
    with tempfile.TemporaryDirectory(prefix=".images.", dir=cfg.artifacts) as scratch:
        sets = {}
        for name in user_images.SETS:
            sets[name] = Path(scratch) / name
            user_images.make_set(name, mnist, PER_SET, sets[name])
        found = bench_images.measure(Classifier(model), sets, REPEAT, report=log.info)
    found |= {"user_style": list(user_images.USER_STYLE), "per_set": PER_SET}
    out = cfg.artifacts / "images.json"
    stage.write_json(out, found)
    stage.record(cfg, "images", [out], [data.cache_path(cfg), cfg.artifacts / "deploy.json", model], started)
    return out


def main() -> None:
    stage.main("images", run)


if __name__ == "__main__":
    main()
