"""Stage: the int8 TFLite models on a microcontroller's interpreter, TFLite Micro -> ``mcu.json``.

    python -m pipeline.mcu [NAME.tflite ...]    # default: every int8 TFLite artifact of the registry

Each model runs in the TFLM interpreter of the ``tflite-micro`` package (its reference kernels,
built for this host), one image at a time as on a device, and gets:
- accuracy on the validation and the test split, and agreement of its predictions (and of its
  raw int8 outputs) with LiteRT's on the test split;
- flash: the model's bytes, which a firmware keeps in flash as they are;
- arena: the smallest ``arena_size``, to ``ARENA_GRANULARITY`` bytes, with which the interpreter
  allocates and runs (found by bisection; the accuracy runs use an interpreter of exactly that
  arena), and what TFLM's RecordingMicroAllocator reports (``print_allocations``);
- the builtin ops it uses (the op resolver a firmware needs) and milliseconds per image.
Picking the MCU model and writing its firmware files is the deploy stage's (``pick`` here,
``pipeline.formats.firmware``).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline import artifacts, data
from pipeline import config as config_mod
from pipeline.core import rules, stage
from pipeline.formats import firmware, tflite_io
from pipeline.measure import runners

log = logging.getLogger("pipeline.mcu")

OUTPUT = "mcu.json"
ARENA_GRANULARITY = 16  # bytes: the bisection's step, TFLM's buffer alignment
MAX_ARENA = 64 << 20  # bytes: a model that needs more is no microcontroller model


def default_names() -> list[str]:
    return [a.name for a in artifacts.select("int8.tflite")]


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2, where TFLM's C++ code prints, to a temporary file; on exit the
    list yielded holds what was printed. Python's own sys.stderr is flushed around it."""
    libc = ctypes.CDLL(None)
    printed: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield printed
        finally:
            libc.fflush(None)
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            printed.append(tmp.read().decode(errors="replace"))


def interpreter(model: bytes, arena: int, probe: np.ndarray):
    """A TFLM interpreter of ``model`` with an ``arena``-byte arena that has run ``probe`` once,
    or None if it does not allocate or run in that arena."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        with captured_stderr():  # TFLM prints why an allocation failed; the bisection expects failures
            it = runtime.Interpreter.from_bytes(model, arena_size=arena)
            it.set_input(probe, 0)
            it.invoke()
    except RuntimeError:
        return None
    return it


def smallest_arena(model: bytes, probe: np.ndarray, granularity: int = ARENA_GRANULARITY):
    """(bytes, interpreter): the smallest multiple of ``granularity`` in which ``model`` allocates
    and runs, and an interpreter with exactly that arena."""
    hi = granularity * max(1, -(-len(model) // granularity))
    while (it := interpreter(model, hi, probe)) is None:
        if hi > MAX_ARENA:
            raise stage.PipelineError(f"the model does not allocate in TFLM even with a {hi}-byte arena")
        hi *= 2
    lo = 0  # invariant: lo fails (no arena is 0 bytes), hi runs
    while hi - lo > granularity:
        mid = (lo + hi) // 2 // granularity * granularity
        found = interpreter(model, mid, probe)
        lo, hi, it = (lo, mid, found) if found is not None else (mid, hi, it)
    return hi, it


def allocations(it) -> dict:
    """What the interpreter's RecordingMicroAllocator reports: total, head (the planned tensors and
    scratch buffers), tail (persistent: the interpreter's structs, quantisation data), by kind."""
    with captured_stderr() as printed:
        it.print_allocations()
    text = "".join(printed)
    found = {f"{k}_bytes": int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
    if "total_bytes" not in found:
        raise stage.PipelineError(f"print_allocations() printed no arena total (format changed?): {text[:200]!r}")
    found["by_kind"] = {k: int(v) for k, v in re.findall(r"'([^']+)' used (\d+) bytes", text)}
    return found


def outputs(it, encoded: np.ndarray) -> tuple[np.ndarray, float]:
    """The raw outputs of ``encoded`` inputs run one at a time, and the seconds it took."""
    first = encoded[:1]
    it.set_input(first, 0)
    it.invoke()
    found = np.empty((len(encoded), *it.get_output(0).shape[1:]), it.get_output(0).dtype)
    start = time.perf_counter()
    for i in range(len(encoded)):
        it.set_input(encoded[i : i + 1], 0)
        it.invoke()
        found[i] = it.get_output(0)[0]
    return found, time.perf_counter() - start


def measure(path: Path, splits: dict[str, np.ndarray], granularity: int = ARENA_GRANULARITY) -> dict:
    """Every figure of ``path`` in TFLM (the module docstring says which)."""
    spec = tflite_io.spec(path, path.name)
    if spec.input_dtype != "int8":
        raise stage.PipelineError(f"{path.name} takes {spec.input_dtype}, not int8: not an MCU model")
    model = path.read_bytes()
    arena, it = smallest_arena(model, spec.encode(splits["x_val"][:1]), granularity)
    reported = allocations(it)
    log.info(
        "%s: flash %d bytes, arena %d bytes (TFLM reports %d)", path.name, len(model), arena, reported["total_bytes"]
    )
    entry = {
        "name": path.name,
        "flash_bytes": len(model),
        "arena_bytes": arena,
        "allocations": reported,
        "ops": firmware.ops(path),
        **firmware.io_quantisation(path),
    }
    for split, key in (("val", "validation"), ("test", "test")):
        x, y = splits[f"x_{split}"], splits[f"y_{split}"]
        raw, seconds = outputs(it, spec.encode(x))
        probabilities = spec.decode(raw)
        predicted = probabilities.argmax(axis=1)
        entry[f"{split}_accuracy"] = round(float((predicted == y).mean()), 6)
        entry[f"{split}_ms_per_image"] = round(seconds * 1000 / len(x), 3)
        log.info(
            "%s: %s %.2f %% of %d images, %.2f ms/image",
            path.name,
            key,
            100 * entry[f"{split}_accuracy"],
            len(x),
            entry[f"{split}_ms_per_image"],
        )
    # The loop ended on the test split. LiteRT's optimised kernels may round differently from
    # TFLM's reference ones: compare the predictions, and the outputs in steps of the int8 scale.
    lite = runners.open_model(path, "tflite").predict(splits["x_test"])
    steps = np.rint(np.abs(lite - probabilities) / spec.output_scale)
    entry["agreement_with_litert"] = round(float((lite.argmax(axis=1) == predicted).mean()), 6)
    entry["identical_outputs_with_litert"] = round(float((steps == 0).all(axis=1).mean()), 6)
    entry["max_output_steps_from_litert"] = int(steps.max())
    entry["ms_per_image"] = entry["test_ms_per_image"]
    log.info(
        "%s: agreement with LiteRT %.2f %% (identical outputs %.2f %%, at most %d int8 steps apart)",
        path.name,
        100 * entry["agreement_with_litert"],
        100 * entry["identical_outputs_with_litert"],
        entry["max_output_steps_from_litert"],
    )
    return entry


def pick(models: list[dict], baseline_val_accuracy: float, max_drop_pp: float) -> tuple[str, bool]:
    """(name, fallback): the smallest flash + arena among ``models`` whose validation accuracy is
    within ``max_drop_pp`` of the baseline's; if none is, the most accurate on validation."""
    ok = [m for m in models if rules.within_bar(baseline_val_accuracy, m["val_accuracy"], max_drop_pp)]
    if ok:
        return min(ok, key=lambda m: (m["flash_bytes"] + m["arena_bytes"], -m["val_accuracy"], m["name"]))[
            "name"
        ], False
    return max(models, key=lambda m: (m["val_accuracy"], -(m["flash_bytes"] + m["arena_bytes"])))["name"], True


def run(cfg: config_mod.Config, names: list[str]) -> Path:
    started = time.time()
    names = names or default_names()
    paths = [cfg.artifacts / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise stage.PipelineError(f"{', '.join(missing)} missing: run `make export` first")
    splits = data.splits(cfg)
    models = [measure(p, splits) for p in paths]
    out = cfg.artifacts / OUTPUT
    version = importlib.metadata.version("tflite-micro")
    stage.write_json(
        out,
        {
            "interpreter": f"tflite-micro {version}",
            "kernels": "TFLM reference kernels, host build: arena figures are a 64-bit host's",
            "arena_granularity": ARENA_GRANULARITY,
            "images": {"validation": len(splits["y_val"]), "test": len(splits["y_test"])},
            "models": models,
        },
    )
    stage.record(cfg, "mcu", [out], [*paths, data.cache_path(cfg)], started, tflite_micro=version)
    return out


def main() -> None:
    stage.main("mcu", run, takes_names=True)


if __name__ == "__main__":
    main()
