"""Staged MNIST compression pipeline: data -> train -> sensitivity -> prune, structured -> qat -> export
-> benchmark, mcu -> deploy -> report, web.

Each stage is a module with ``run(cfg, ...)`` and a ``main()`` for ``python -m pipeline.<stage>``;
``make all`` chains them through files in ``artifacts/``, by rules derived from the artifact
registry (``pipeline/artifacts.py``, ``pipeline/deps.py``).
"""

import os

# tfmot works only with Keras 2 (tf-keras): this must be set before TensorFlow is first
# imported, and every stage imports this package first, so it is set here once.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
