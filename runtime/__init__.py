"""Edge runtime: classify digit images with onnxruntime, numpy and Pillow only.

    from runtime import Classifier
    Classifier().classify("digit.png").digit

``Classifier`` (and the rest of ``runtime.classifier``) is imported on first use, so that
``import runtime.preprocess``, which the pipeline does, does not load onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.classifier import Classifier, ModelError, Prediction

__all__ = ["Classifier", "ModelError", "Prediction"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from runtime import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
