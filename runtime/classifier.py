"""Classify digit images with one of the pipeline's ONNX models, on onnxruntime alone.

    from runtime import Classifier
    clf = Classifier()                          # artifacts/model.onnx, or the file named by $RUNTIME_MODEL
    clf.classify("digit.png").digit             # 7; also a PIL image or a numpy array
    clf.classify_many(paths, jobs=4)            # lazily, batched, in order; a failed image gives its PreprocessError

How to feed the model (layout, dtype, scale and zero point, labels) comes from its ``metadata_props``
(``runtime.metadata``) and is checked against its input signature when it is opened, so any of the
pipeline's ONNX artifacts works, fp32 or int8. A model that cannot be used raises ModelError.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime import native
from runtime.metadata import MetadataError, ModelSpec
from runtime.preprocess import PreprocessError, to_mnist
from runtime.session import session_options

log = logging.getLogger("runtime.classifier")

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "artifacts" / "model.onnx"  # from the repo root
MODEL_ENV = "RUNTIME_MODEL"  # names another default model
BATCH = 64  # images per onnxruntime run: most of the batching gain, bounded memory
REBUILD = "run `make all` to build it"
ORT_TYPES = {"float32": "tensor(float)", "int8": "tensor(int8)", "uint8": "tensor(uint8)"}


class ModelError(Exception):
    """The model is missing, unreadable or not one the runtime can feed."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def _reason(error: Exception) -> str:
    """onnxruntime's message without its prefix, the path and the C++ source location."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .* failed: ?)?", "", text)
    return re.sub(r"^\S+\.(cc|h):\d+ .*?\) ", "", text)[:200]


def default_model() -> Path:
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


@dataclass(frozen=True)
class Prediction:
    digit: int  # the most probable class
    confidence: float  # its probability
    top: tuple[tuple[int, float], ...]  # every class with its probability, most probable first


class Classifier:
    """An onnxruntime session for one of the pipeline's models, with the preprocessing in front of it."""

    def __init__(self, model: str | os.PathLike | None = None, options: ort.SessionOptions | None = None) -> None:
        self.path = Path(model) if model is not None else default_model()
        if not self.path.is_file():
            problem = "is a directory, not a model file" if self.path.is_dir() else "no such model file"
            raise ModelError(self.path, f"{problem}; {REBUILD}")
        try:
            self.session = ort.InferenceSession(
                str(self.path), options or session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types, one per kind of failure
            raise ModelError(self.path, f"not a readable ONNX model ({_reason(e)}); {REBUILD} again") from None
        try:
            self.spec = ModelSpec.from_props(self.session.get_modelmeta().custom_metadata_map)
        except MetadataError as e:
            raise ModelError(self.path, f"{e}; {REBUILD} again") from None
        if not all(label.isdigit() for label in self.spec.labels):
            raise ModelError(self.path, f"its labels {list(self.spec.labels)} are not digits; {REBUILD} again")
        self.digits = [int(label) for label in self.spec.labels]
        self.input, self.batch = self._check_signature()
        log.debug("%s: %s", self.path, self.spec)

    def _check_signature(self) -> tuple[str, int | None]:
        """The input's name and fixed batch size (None if dynamic), once it is known to take 28x28 images."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        spec = self.spec
        image = [28, 28, 1] if spec.layout == "NHWC" else [1, 28, 28]
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or list(inputs[0].shape[1:]) != image:
            shapes = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            problem = f"its input ({shapes}) is not a batch of 28x28 single-channel images in {spec.layout}"
            raise ModelError(self.path, f"{problem}; {REBUILD}")
        if inputs[0].type != ORT_TYPES[spec.input_dtype]:
            problem = f"its input is {inputs[0].type} but its metadata_props say {spec.input_dtype}"
            raise ModelError(self.path, f"{problem}; {REBUILD}")
        classes = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        if isinstance(classes, int) and classes != len(spec.labels):
            raise ModelError(self.path, f"it has {classes} outputs for {len(spec.labels)} labels; {REBUILD}")
        batch = inputs[0].shape[0]
        return inputs[0].name, batch if isinstance(batch, int) and batch > 0 else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Preprocessed images, float [N, 28, 28] or [N, 28, 28, 1] in [0, 1] -> probabilities [N, classes]."""
        x = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
        step = self.batch or BATCH
        probabilities = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            if self.batch:  # a fixed batch size: pad the last chunk
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), 28, 28, 1), np.float32)])
            try:
                outputs = self.session.run(None, {self.input: self.spec.encode(chunk)})[0]
            except Exception as e:  # a model that loads but cannot run
                raise ModelError(self.path, f"fails to run ({_reason(e)}); {REBUILD} again") from None
            probabilities.append(self.spec.decode(outputs)[: min(step, len(x) - start)])
        return np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.digits)), np.float32)

    def prediction(self, probabilities: np.ndarray) -> Prediction:
        order = np.argsort(-probabilities, kind="stable")
        top = tuple((self.digits[i], float(probabilities[i])) for i in order)
        return Prediction(digit=top[0][0], confidence=top[0][1], top=top)

    def classify(self, image: str | os.PathLike | object) -> Prediction:
        """One image: a path, a PIL image or a numpy array. Raises PreprocessError if it holds no digit."""
        (result,) = self.classify_many([image])
        if isinstance(result, PreprocessError):
            raise result
        return result

    def classify_many(self, images: Iterable, jobs: int = 1) -> Iterator[Prediction | PreprocessError]:
        """Many images, in input order, as they are done: a failed one gives its PreprocessError in its place
        (an item that is a PreprocessError already is passed through). ``images`` is read a block at a time,
        so memory stays bounded however many there are; ``jobs`` > 1 preprocesses in that many processes (spawned:
        nothing of this one, onnxruntime's threads included, is copied), once there are more than BATCH images."""
        block = BATCH * max(jobs, 1) * 2  # images in flight: enough to keep every process busy
        items = iter(images)
        with contextlib.ExitStack() as stack:
            pool = None
            while chunk := list(itertools.islice(items, block)):
                if pool is None and jobs > 1 and len(chunk) > BATCH and not _can_start_interpreters():
                    log.warning("this Python cannot start another (under qemu-user?); preprocessing in this process")
                    jobs = 1
                if pool is None and jobs > 1 and len(chunk) > BATCH:  # fewer are done before processes start
                    spawn = multiprocessing.get_context("spawn")
                    warned = native.load() is None  # built here once (or found wanting: said once) before they start
                    workers = ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_worker, initargs=(warned,))
                    pool = stack.enter_context(workers)
                prepared = None
                if pool:
                    try:
                        prepared = list(pool.map(_prepare, chunk, chunksize=4))
                    except BrokenProcessPool:  # e.g. under qemu-user, which cannot start a new interpreter
                        log.warning("preprocessing processes could not start or died; going on in this one")
                        jobs = 1
                        pool = None
                yield from self._run(prepared if prepared is not None else [_prepare(image) for image in chunk])

    def _run(self, prepared: list[np.ndarray | PreprocessError]) -> Iterator[Prediction | PreprocessError]:
        ready = [x for x in prepared if not isinstance(x, PreprocessError)]
        probabilities = iter(self.predict(np.stack(ready)) if ready else [])
        for x in prepared:
            yield x if isinstance(x, PreprocessError) else self.prediction(next(probabilities))


@functools.cache
def _can_start_interpreters() -> bool:
    """Whether this interpreter can start another, as spawned workers need: under qemu-user without binfmt it
    cannot (exec fails at once), and a pool's workers, and its resource tracker, die in ways that can take this
    process with them."""
    try:
        subprocess.run([sys.executable, "-c", ""], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _worker(warned: bool) -> None:
    """A preprocessing process starts: if its parent said already that the native core would not build, not again."""
    if warned:
        logging.getLogger(native.__name__).setLevel(logging.ERROR)


def _prepare(image: object) -> np.ndarray | PreprocessError:
    if isinstance(image, PreprocessError):
        return image
    try:
        return to_mnist(image)
    except PreprocessError as e:
        return e
