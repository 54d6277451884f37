"""Stage, parity: the same digits on every CPU? Every ONNX artifact on every instruction-set tier -> ``parity.json``.

    python -m pipeline.parity              # make parity; part of make all

Every ONNX artifact of the registry runs on ``parity.images`` images (half validation, half test)
with onnxruntime's default options and with the runtime's, on this machine and on each tier of
``parity.tiers`` (``pipeline.measure.tiers``: emulated x86-64 AVX2 and SSE-only CPUs, emulated
aarch64, onnxruntime-web's WebAssembly), all through the one command ``python -m runtime.parity``.
Where an ONNX artifact has a TFLite twin computing the same function (it was converted from that
file, or both were converted from the same Keras model at the same precision), LiteRT and TFLite
Micro run the twin on the same images. Each cell of the matrix compares a tier with this machine's
onnxruntime: the digits that differ, the largest difference of a probability, and whether the raw
outputs are bit for bit the same. A tier this host cannot run is recorded as skipped, with why.
The deploy stage picks only models whose digits agree on every tier that ran.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import schemas, stage
from pipeline.measure import runners, tiers

log = logging.getLogger("pipeline.parity")
SCHEMA = schemas.VERSIONS["parity"]
SESSIONS = ("defaults", "runtime")  # runtime.parity.SESSIONS: onnxruntime's default options, the runtime's


def images(cfg: config_mod.Config) -> tuple[np.ndarray, dict]:
    """uint8 images [N,28,28]: the first half of ``parity.images`` from validation, the rest from test."""
    s = data_mod.splits(cfg)
    half = cfg.parity.images // 2
    chosen = {"validation": min(half, len(s["x_val"])), "test": min(cfg.parity.images - half, len(s["x_test"]))}
    x = np.concatenate([s["x_val"][: chosen["validation"]], s["x_test"][: chosen["test"]]])
    return np.rint(x[..., 0] * 255).astype(np.uint8), chosen


def twin(a: artifacts.Artifact) -> artifacts.Artifact | None:
    """The TFLite artifact that computes what ONNX artifact ``a`` computes, if there is one."""
    if a.parent and a.parent.endswith(".tflite"):
        return artifacts.get(a.parent)
    same = [t for t in artifacts.ARTIFACTS if (t.format, t.parent, t.precision) == ("tflite", a.parent, a.precision)]
    return same[0] if same else None


def twin_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """LiteRT's and TFLite Micro's probabilities for the TFLite model ``path`` (TFLM: int8 models only)."""
    from pipeline import mcu
    from pipeline.formats import tflite_io

    found = {"litert": runners.open_model(path, "tflite").predict(x)}
    spec = tflite_io.spec(path)
    if spec.input_dtype != "float32":
        encoded = spec.encode(x)
        it = mcu.interpreter(path.read_bytes(), 1 << 20, encoded[:1])  # ample: the arena is measured by the mcu stage
        if it is not None:
            found["tflm"] = spec.decode(mcu.outputs(it, encoded)[0])
    return found


def cell(reference: np.ndarray, probabilities: np.ndarray, raw_same: bool | None) -> dict:
    return {
        "digits_differ": int((reference.argmax(1) != probabilities.argmax(1)).sum()),
        "max_abs_dprob": float(np.abs(reference.astype(np.float64) - probabilities).max()),
        "bit_exact": raw_same,
    }


def compare(name: str, host: dict, other: dict) -> dict[str, dict]:
    """Per session, ``other``'s outputs of artifact ``name`` against the host's."""
    found = {}
    for session in SESSIONS:
        key = f"{name}|{session}"
        if key not in other:
            continue
        ref, raw = host[key], np.asarray(other[key]).reshape(host[key].shape)
        same = bool(np.array_equal(ref.astype(np.float64), raw.astype(np.float64)))
        reference = host[f"{key}|probabilities"]
        probabilities = np.asarray(other[f"{key}|probabilities"], np.float32).reshape(reference.shape)
        found[session] = cell(reference, probabilities, same)
    return found


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    a = cfg.artifacts
    onnx = [x for x in artifacts.ARTIFACTS if x.format == "onnx"]
    paths = [a / x.name for x in onnx]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise stage.PipelineError(f"{', '.join(missing)} missing: run `make all`")
    x8, chosen = images(cfg)
    log.info(
        "%d ONNX artifacts x %d images (%s) on %s", len(onnx), len(x8), chosen, ", ".join(("host", *cfg.parity.tiers))
    )
    ran, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix="parity-") as scratch:
        for key in ("host", *cfg.parity.tiers):
            tier, t0 = tiers.get(key), time.perf_counter()
            try:
                outputs[key] = tier.run(x8, paths, Path(scratch) / key, cfg.parity.timeout)
            except tiers.Unavailable as e:
                if key == "host":
                    raise stage.PipelineError(f"the host tier cannot run: {e}") from None
                log.warning("%s: skipped: %s", key, e)
                ran.append({"key": key, "name": tier.name, "how": tier.how, "status": "skipped", "reason": str(e)})
                continue
            except RuntimeError as e:
                raise stage.PipelineError(str(e)) from None
            seconds = round(time.perf_counter() - t0, 1)
            log.info("%s (%s): %d models x %d images in %.1f s", key, tier.name, len(paths), len(x8), seconds)
            ran.append({"key": key, "name": tier.name, "how": tier.how, "status": "ran", "seconds": seconds})
    host = outputs["host"]
    x = data_mod.mnist_to_float(x8)
    rows = []
    for art in onnx:
        cells = {key: compare(art.name, host, found) for key, found in outputs.items() if key != "host"}
        t = twin(art)
        twins = {}
        if t is not None and (a / t.name).is_file():
            reference = host[f"{art.name}|defaults|probabilities"]
            twins = {rt: cell(reference, p, None) | {"twin": t.name} for rt, p in twin_outputs(a / t.name, x).items()}
        agree = all(c["digits_differ"] == 0 for per in cells.values() for c in per.values())
        rows.append({"name": art.name, "precision": art.precision, "tiers": cells, "twins": twins, "agree": agree})
        log.info("%s: %s", art.name, "same digits on every tier" if agree else "DIGITS DIFFER between tiers")
    output = a / "parity.json"
    found = {"schema": SCHEMA, "images": {"count": len(x8), **chosen}, "sessions": list(SESSIONS), "tiers": ran}
    stage.write_json(output, schemas.check(found | {"artifacts": rows}, "parity", output))
    stage.record(cfg, "parity", [output], paths, started)
    return output


def main() -> None:
    stage.main("parity", run)


if __name__ == "__main__":
    main()
