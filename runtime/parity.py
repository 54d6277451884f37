"""What this machine's onnxruntime computes for given models and images: the device half of the parity matrix.

    python -m runtime.parity images.npy outputs.npz models/*.onnx

``images.npy`` holds MNIST-ready uint8 images [N,28,28] (0-255, ink white on black). Every model
runs on all of them twice, with onnxruntime's default session options (how any host loads the
file) and with the runtime's (``runtime.session``), and ``outputs.npz`` gets, per model and
session, the raw output tensor (``NAME|defaults``, ``NAME|runtime``) and the decoded probabilities
(``...|probabilities``). The pipeline's parity stage runs this same command on the build machine,
under emulated CPUs and on emulated aarch64, and compares the files; run it on a device to check
that device the same way. onnxruntime, numpy and the standard library only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from runtime.metadata import ModelSpec, mnist_to_float

SESSIONS = ("defaults", "runtime")  # onnxruntime's default options, the runtime's options
BATCH = 250  # images per run: large enough to amortise the call, small enough for an emulated CPU's memory


def _session(path: Path, which: str):
    import onnxruntime as ort

    from runtime.session import ort_defaults, session_options

    options = ort_defaults() if which == "defaults" else session_options()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(model: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{session: raw output, session|probabilities: decoded}`` of ``model`` on uint8 ``images``."""
    found = {}
    x = mnist_to_float(images)
    for which in SESSIONS:
        session = _session(model, which)
        spec = ModelSpec.from_props(session.get_modelmeta().custom_metadata_map)
        name = session.get_inputs()[0].name
        raw = np.concatenate(
            [session.run(None, {name: spec.encode(x[i : i + BATCH])})[0] for i in range(0, len(x), BATCH)]
        )
        found[which] = raw
        found[f"{which}|probabilities"] = spec.decode(raw).astype(np.float32)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, help="uint8 MNIST images [N,28,28], .npy")
    parser.add_argument("out", type=Path, help="where to write the outputs, .npz")
    parser.add_argument("models", type=Path, nargs="+", help="ONNX models")
    args = parser.parse_args(argv)
    images = np.load(args.images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        print(
            f"{args.images}: error: expected uint8 images [N,28,28], got {images.dtype} {images.shape}", file=sys.stderr
        )
        return 2
    started, found = time.perf_counter(), {}
    for model in args.models:
        for key, value in outputs(model, images).items():
            found[f"{model.name}|{key}"] = value
    with open(args.out, "wb") as f:  # a file object: np.savez would add .npz to a name without it
        np.savez(f, **found)
    print(f"{len(args.models)} models x {len(images)} images in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
