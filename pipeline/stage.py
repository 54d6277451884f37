"""What every stage shares: atomic writes, the JSON record beside each output, and ``main``.

A stage writes each output to a temporary name and renames it when complete, so a run
killed at any point leaves either the old file or the new one, never a torn one, and
Make never mistakes a half-written file for a finished stage.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline import config as config_mod

log = logging.getLogger("pipeline")

LIBRARIES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "numpy",
    "onnx",
    "tf2onnx",
    "onnxruntime",
    "ai-edge-litert",
    "pillow",
)


class PipelineError(RuntimeError):
    """A failure the user can act on; ``main`` prints it as one line, without a traceback."""


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final`` (same suffix); rename it to ``final`` on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o644)  # mkstemp makes it private; artifacts are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, obj: object) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def record(
    cfg: config_mod.Config, stage: str, outputs: list[Path], parents: list[Path], started: float, **extra
) -> None:
    """Write ``<first output>.json``: what made it, from what, with which settings and libraries."""
    rel = lambda p: str(Path(p).relative_to(cfg.artifacts)) if Path(p).is_relative_to(cfg.artifacts) else str(p)  # noqa: E731
    write_json(
        outputs[0].with_suffix(".json"),
        {
            "stage": stage,
            "outputs": [rel(p) for p in outputs],
            "parents": [rel(p) for p in parents],
            "wall_time_s": round(time.time() - started, 2),
            "seed": cfg.seed,
            "profile": cfg.profile,
            "config": cfg.to_dict(),
            "versions": versions(),
            **extra,
        },
    )


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow, and make TensorFlow's ops deterministic."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# What TensorFlow and LiteRT print from C++ on every start, before (or outside) any log level
# applies: a oneDNN notice, "no CUDA" errors on a machine without a GPU, a tf.data attribute
# warning, the XNNPACK notice. Real errors still get through.
CHATTER = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog"
    rb"|[IWE]0000 [\d:. ]+\d+ (port|cudart_stub|cuda_platform|node_def_util)\.cc:\d+\]"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)


@contextlib.contextmanager
def tensorflow_chatter_filtered() -> Iterator[None]:
    """Pass this process's stderr (file descriptor 2) through a filter that drops CHATTER lines."""
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    real_stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    pump_out = os.dup(real_stderr)  # the pump's own copy: real_stderr may be closed before it runs

    def pump() -> None:
        with os.fdopen(read_end, "rb") as lines, os.fdopen(pump_out, "wb") as out:
            for line in lines:
                if not CHATTER.match(line):
                    out.write(line)
                    out.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the pump sees EOF
        os.close(real_stderr)
        thread.join(timeout=5)


def main(stage: str, body: Callable[[config_mod.Config], object], *, quiet: bool = False) -> None:
    """Run ``body(cfg)`` as the CLI of ``stage``: clear one-line errors, exit 1 on failure.

    ``quiet``: no closing "done" line, for commands whose output is the point."""
    logging.basicConfig(level=logging.INFO, format=f"[{stage}] %(message)s", stream=sys.stdout)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "tf2onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Converters warn about their own deprecations and defaults; our log says what happens.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite\..*")
    started = time.time()
    try:
        cfg = config_mod.load()
        with tensorflow_chatter_filtered():
            body(cfg)
    except (config_mod.ConfigError, PipelineError) as e:
        print(f"[{stage}] error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"[{stage}] interrupted; nothing half-written was kept, rerun to resume", file=sys.stderr)
        raise SystemExit(130) from None
    if not quiet:
        log.info("done in %.1f s", time.time() - started)
