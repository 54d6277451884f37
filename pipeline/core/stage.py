"""What every stage shares: atomic writes, the JSON record of each output, and ``main``.

    stage.main("deploy", run)                   # python -m pipeline.deploy [--set KEY=VALUE ...]
    stage.main_each("export", export)           # python -m pipeline.export [NAME ...]: export(cfg, artifact)

A stage writes each output to a temporary name and renames it when complete, so a run
killed at any point leaves either the old file or the new one, never a torn one, and
Make never mistakes a half-written file for a finished stage.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline import config as config_mod
from pipeline.core import quiet

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
    "tflite-micro",
)
RECORDS = "records"  # folder in the artifacts folder: one JSON record per stage output


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


def record_path(cfg: config_mod.Config, output: Path) -> Path:
    """Where the record of ``output`` goes: ``records/<its path in the artifacts folder>.json``."""
    rel = output.relative_to(cfg.artifacts) if output.is_relative_to(cfg.artifacts) else Path(output.name)
    return cfg.artifacts / RECORDS / f"{rel.as_posix().replace('/', '__')}.json"


def record(
    cfg: config_mod.Config, stage: str, outputs: list[Path], parents: list[Path], started: float, **extra
) -> None:
    """Write the record of ``outputs[0]``: what made it, from what, with which settings and libraries."""
    rel = lambda p: str(Path(p).relative_to(cfg.artifacts)) if Path(p).is_relative_to(cfg.artifacts) else str(p)  # noqa: E731
    write_json(
        record_path(cfg, outputs[0]),
        {
            "stage": stage,
            "outputs": [rel(p) for p in outputs],
            "parents": [rel(p) for p in parents],
            "wall_time_s": round(time.time() - started, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "seed": cfg.seed,
            "profile": cfg.profile,
            "overrides": list(cfg.overrides),
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


def each(cfg: config_mod.Config, stage: str, names: list[str] | None, build: Callable) -> list[Path]:
    """``build(cfg, artifact)`` for each registry artifact of ``stage`` named (default: all), in registry order."""
    from pipeline import artifacts

    own = {a.name: a for a in artifacts.of_stage(stage)}
    unknown = sorted(set(names or []) - set(own))
    if unknown:
        raise PipelineError(f"not made by {stage}: {', '.join(unknown)}; its registry artifacts: {', '.join(own)}")
    return [build(cfg, a) for a in own.values() if not names or a.name in names]


def main_each(stage: str, build: Callable) -> None:
    """The CLI of a stage that writes registry artifacts: ``python -m pipeline.<stage> [NAME ...]``."""
    main(stage, lambda cfg, names: each(cfg, stage, names, build), takes_names=True)


def main(
    stage: str, body: Callable[..., object], *, takes_names: bool = False, quiet_done: bool = False, argv=None
) -> None:
    """Run ``body(cfg)`` (``body(cfg, names)`` if ``takes_names``) as the CLI of ``stage``: overrides
    with ``--set``, clear one-line errors, exit 1 on failure. ``quiet_done``: no closing "done" line."""
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.{stage}")
    if takes_names:
        parser.add_argument("names", nargs="*", metavar="NAME", help="artifacts to build (default: all of the stage's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{stage}] %(message)s", stream=sys.stdout)
    quiet.quiet_python_loggers()
    started = time.time()
    try:
        cfg = config_mod.load()
        cfg = config_mod.apply(cfg, args.set)
        with quiet.third_party_chatter_filtered():
            body(cfg, args.names) if takes_names else body(cfg)
    except (config_mod.ConfigError, PipelineError) as e:
        print(f"[{stage}] error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"[{stage}] interrupted; nothing half-written was kept, rerun to resume", file=sys.stderr)
        raise SystemExit(130) from None
    if not quiet_done:
        log.info("done in %.1f s", time.time() - started)
