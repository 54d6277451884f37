"""Staged MNIST compression pipeline: data -> train -> sensitivity -> prune, structured -> qat -> export
-> benchmark, parity, mcu -> deploy -> report, web, device_kit.

The modules of this package are the stages, each with ``run(cfg, ...)`` and a ``main()`` for
``python -m pipeline.<stage>``, plus the registry (``artifacts``), the config (``config``) and
two entry points (``sweep``, ``serve``); helpers live in the sub-packages core, nn, formats,
measure and reporting. ``make all`` chains the stages through files in ``artifacts/``, by rules
derived from the registry (``pipeline/core/deps.py``).
"""

import os

# tfmot works only with Keras 2 (tf-keras): this must be set before TensorFlow is first
# imported, and every stage imports this package first, so it is set here once.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
