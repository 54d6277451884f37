"""The contract between the pipeline's ONNX exports and the runtime: ``metadata_props``.

Every ONNX model the pipeline writes carries these string keys, so the runtime can feed
any of them (fp32 or int8, NHWC or NCHW, with or without softmax) without flags:

    layout            "NHWC" or "NCHW": where the single image channel sits
    input_dtype       "float32", "int8" or "uint8": must agree with the input signature
    input_scale       q = round(x / scale) + zero_point for a [0,1] image x (1 and 0 for float)
    input_zero_point
    output            "probabilities" or "logits" (the runtime applies softmax to logits)
    output_scale      dequantise an integer output: (q - zero_point) * scale (1 and 0 for float)
    output_zero_point
    labels            JSON list of the class names, in output order
    name              the artifact itself, e.g. "structured_w8.onnx" (model.onnx keeps its artifact's name)
    source            the artifact the model was exported from, e.g. "pruned_qat.keras"
    preprocessing     the image normalisation the model was trained with (PREPROCESSING)
    test_accuracy     accuracy on the MNIST test set, once benchmarked (absent before)

This module imports nothing but the standard library and numpy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

PREPROCESSING = "mnist-v1: ink white on black, in [0,1], digit's longer side 20 px, centred by mass in 28x28"
LAYOUTS = ("NHWC", "NCHW")
DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8}
OUTPUTS = ("probabilities", "logits")
DIGITS = tuple(str(d) for d in range(10))


def mnist_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST images [N,28,28] -> float32 [N,28,28,1] in [0, 1], as the models are trained."""
    return (np.asarray(images, np.float32) / 255.0)[..., None]


class MetadataError(ValueError):
    """The model's metadata_props are missing or inconsistent."""


@dataclass(frozen=True)
class ModelSpec:
    layout: str = "NHWC"
    input_dtype: str = "float32"
    input_scale: float = 1.0
    input_zero_point: int = 0
    output: str = "probabilities"
    output_scale: float = 1.0
    output_zero_point: int = 0
    labels: tuple[str, ...] = DIGITS
    name: str = ""
    source: str = ""
    preprocessing: str = PREPROCESSING
    test_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise MetadataError(f"layout {self.layout!r} is not one of {LAYOUTS}")
        if self.input_dtype not in DTYPES:
            raise MetadataError(f"input_dtype {self.input_dtype!r} is not one of {tuple(DTYPES)}")
        if self.output not in OUTPUTS:
            raise MetadataError(f"output {self.output!r} is not one of {OUTPUTS}")
        if not self.input_scale > 0 or not self.output_scale > 0:
            raise MetadataError("input_scale and output_scale must be > 0")

    def to_props(self) -> dict[str, str]:
        props = {k: (json.dumps(list(v)) if k == "labels" else str(v)) for k, v in asdict(self).items()}
        if self.test_accuracy is None:
            del props["test_accuracy"]
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelSpec:
        missing = [k for k in ("layout", "input_dtype", "labels") if k not in props]
        if missing:
            raise MetadataError(f"metadata_props lack {', '.join(missing)}: not a model exported by this pipeline")
        try:
            return cls(
                layout=props["layout"],
                input_dtype=props["input_dtype"],
                input_scale=float(props.get("input_scale", 1.0)),
                input_zero_point=int(props.get("input_zero_point", 0)),
                output=props.get("output", "probabilities"),
                output_scale=float(props.get("output_scale", 1.0)),
                output_zero_point=int(props.get("output_zero_point", 0)),
                labels=tuple(json.loads(props["labels"])),
                name=props.get("name", ""),
                source=props.get("source", ""),
                preprocessing=props.get("preprocessing", ""),
                test_accuracy=float(props["test_accuracy"]) if "test_accuracy" in props else None,
            )
        except (ValueError, TypeError) as e:
            raise MetadataError(f"unreadable metadata_props: {e}") from None

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Float [N,28,28,1] images in [0,1] -> the model's input tensor (layout and dtype)."""
        x = np.asarray(images, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        if self.input_dtype == "float32":
            return np.ascontiguousarray(x)
        info = np.iinfo(DTYPES[self.input_dtype])
        q = np.rint(x / self.input_scale) + self.input_zero_point
        return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(DTYPES[self.input_dtype]))

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """The model's output tensor -> float probabilities [N, classes]."""
        y = np.asarray(outputs).reshape(len(outputs), -1)
        if y.dtype != np.float32:
            y = (y.astype(np.float32) - self.output_zero_point) * self.output_scale
        if self.output == "logits":
            e = np.exp(y - y.max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        return y
