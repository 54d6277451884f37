"""Measure the pipeline's ONNX models on the machine this runs on, with the runtime alone.

    python -m runtime.bench [--models DIR_OR_FILE ...] [--images DIR] [--name NAME] [--out FILE.json] [--quick]

For each model: batch-1 latency (p50/p90/p99 in µs, one thread) with the runtime's session options
and with onnxruntime's defaults (how every other consumer opens the file), measured in interleaved
rounds after a warm-up so that drift of the machine hits every figure alike, and only the run call
timed; throughput at a batch of 64 on every core; accuracy on a folder of labelled images
(``LABEL_*.png``, e.g. ``7_00012.png``) through the runtime's own preprocessing (``to_mnist``, once
per image, since it does not depend on the model) and each model's ``Classifier.predict``: what
``Classifier.classify_many`` does. Writes one JSON (``runtime/bench_schema.json``) with the machine
(``--name``, CPU, ISA flags, OS, versions), the settings and the per-model figures.

Defaults suit the device kit: models from ``models/``, images from ``images/``, output ``NAME.json``.
Exit status: 0 written, 2 for a usage error, no models, no labelled images or a model that cannot be used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime import native
from runtime.classifier import Classifier, ModelError
from runtime.classify import IMAGE_SUFFIXES
from runtime.machine import describe as machine
from runtime.preprocess import PreprocessError, to_mnist
from runtime.session import ort_defaults

SCHEMA = Path(__file__).with_name("bench_schema.json")
VERSION = 1  # of the JSON this writes; bump on an incompatible change to bench_schema.json
FULL = {"warmup": 50, "runs": 2000, "rounds": 5, "throughput_batch": 64, "throughput_seconds": 1.0}
QUICK = {"warmup": 5, "runs": 100, "rounds": 2, "throughput_batch": 64, "throughput_seconds": 0.2}
VARIANTS = ("runtime", "ort_defaults")  # the runtime's session options; onnxruntime's, on one thread


class BenchError(Exception):
    """Nothing to measure, or nothing to measure it on: one line for the user."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m runtime.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", type=Path, default=None, metavar="DIR_OR_FILE",
                   help="ONNX files, or folders of them (default: models/, else artifacts/)")  # fmt: skip
    p.add_argument("--images", type=Path, default=Path("images"), help="folder of LABEL_*.png (default: images/)")
    p.add_argument("--name", default=None, help="what to call this machine (default: its host name)")
    p.add_argument("--out", type=Path, default=None, help="the JSON to write (default: NAME.json)")
    p.add_argument("--quick", action="store_true", help="fewer runs: a check, not a measurement")
    p.add_argument("--runs", type=int, default=None, help="timed batch-1 runs per model and options")
    p.add_argument("--predictions", action="store_true", help="also write every image's predicted digit")
    return p.parse_args(argv)


def find_models(arguments: list[Path] | None) -> list[Path]:
    if arguments is None:
        arguments = [next((d for d in (Path("models"), Path("artifacts")) if d.is_dir()), Path("models"))]
    found: list[Path] = []
    for path in arguments:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.onnx") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise BenchError(f"{path}: no such file or folder")
    if not found:
        raise BenchError(f"no ONNX models in {', '.join(map(str, arguments))} (looked for *.onnx)")
    return list(dict.fromkeys(found))


def find_images(folder: Path) -> tuple[list[Path], list[int]]:
    """The labelled images in ``folder`` (file names ``LABEL_anything.png``) and their labels, sorted."""
    if not folder.is_dir():
        raise BenchError(f"{folder}: no such folder of labelled images (--images)")
    named = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    labelled = [(p, int(m.group(1))) for p in named if (m := re.match(r"(\d+)_", p.name))]
    if not labelled:
        raise BenchError(f"{folder}: no labelled images (file names LABEL_*.png, e.g. 7_00012.png)")
    return [p for p, _ in labelled], [label for _, label in labelled]


def percentiles(samples_ns: list[int]) -> dict:
    us = np.asarray(samples_ns, np.float64) / 1000
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"runs": len(us), "mean": round(float(us.mean()), 2)} | {
        k: round(float(v), 2) for k, v in (("p50", p50), ("p90", p90), ("p99", p99))
    }


def latency(classifiers: list[Classifier], image: np.ndarray, settings: dict) -> list[dict]:
    """Batch-1 latency of each model with each of VARIANTS, in rounds that visit every pair in turn."""
    pairs = []
    for clf in classifiers:
        defaults = ort.InferenceSession(str(clf.path), ort_defaults(1), providers=["CPUExecutionProvider"])
        feed = {clf.input: clf.spec.encode(image[None, ..., None])}
        pairs.append({"runtime": (clf.session, feed), "ort_defaults": (defaults, feed)})
    for variants in pairs:
        for session, feed in variants.values():
            for _ in range(settings["warmup"]):
                session.run(None, feed)
    samples = [{v: [] for v in VARIANTS} for _ in pairs]
    per_round = max(1, settings["runs"] // settings["rounds"])
    for r in range(settings["rounds"]):
        print(f"[bench] latency round {r + 1}/{settings['rounds']}", file=sys.stderr)
        for variants, found in zip(pairs, samples, strict=True):
            for v in VARIANTS[r % 2 :] + VARIANTS[: r % 2]:  # alternate which goes first
                session, feed = variants[v]
                for _ in range(per_round):
                    start = time.perf_counter_ns()
                    session.run(None, feed)
                    found[v].append(time.perf_counter_ns() - start)
    return [{v: percentiles(found[v]) for v in VARIANTS} for found in samples]


def throughput(clf: Classifier, images: np.ndarray, settings: dict) -> dict:
    """Images per second at a batch of ``throughput_batch`` with onnxruntime's defaults on every core."""
    batch, threads = settings["throughput_batch"], os.cpu_count() or 1
    session = ort.InferenceSession(str(clf.path), ort_defaults(threads), providers=["CPUExecutionProvider"])
    x = np.resize(images, (clf.batch or batch, *images.shape[1:]))  # repeats the images to fill the batch
    feed = {clf.input: clf.spec.encode(x[..., None])}
    for _ in range(3):
        session.run(None, feed)
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < settings["throughput_seconds"]:
        session.run(None, feed)
        done += len(x)
    return {"batch": len(x), "threads": threads, "value": round(done / (time.perf_counter() - start), 1)}


def peak_rss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def preprocess(paths: list[Path]) -> tuple[np.ndarray, list[bool], dict]:
    """Every image through ``to_mnist``; which ones failed, and how long one took."""
    ok, images, times = [], [], []
    for path in paths:
        start = time.perf_counter_ns()
        try:
            images.append(to_mnist(path))
            ok.append(True)
        except PreprocessError as e:
            print(f"{path}: error: {e}", file=sys.stderr)
            ok.append(False)
        times.append(time.perf_counter_ns() - start)
    stacked = np.stack(images) if images else np.zeros((0, 28, 28), np.float32)
    return stacked, ok, {"images": len(paths), "unreadable": ok.count(False), "preprocess_us": percentiles(times)}


def measure(models: list[Path], image_paths: list[Path], labels: list[int], settings: dict, keep: bool) -> dict:
    try:
        classifiers = [Classifier(m) for m in models]
    except ModelError as e:
        raise BenchError(f"{e.path}: {e.problem}") from None
    images, ok, about = preprocess(image_paths)
    if not len(images):
        raise BenchError("not one of the labelled images could be read")
    print(f"[bench] {len(models)} models, {len(images)} images; timing batch-1 latency", file=sys.stderr)
    latencies = latency(classifiers, images[0], settings)
    results = []
    for i, (clf, lat) in enumerate(zip(classifiers, latencies, strict=True)):
        digits = iter(np.asarray(clf.digits)[clf.predict(images).argmax(axis=1)].tolist())
        predicted = [next(digits) if good else None for good in ok]
        errors = sum(p != y for p, y in zip(predicted, labels, strict=True))
        data = clf.path.read_bytes()
        result = {
            "name": clf.path.name,
            "source": clf.spec.source,
            "input_dtype": clf.spec.input_dtype,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "latency_us": lat,
            "throughput_ips": throughput(clf, images[:64], settings),
            "accuracy": round(1 - errors / len(labels), 6),
            "errors": errors,
            "peak_rss_bytes": peak_rss(),
        } | ({"predictions": predicted} if keep else {})
        results.append(result)
        print(
            f"[bench] {i + 1}/{len(models)} {result['name']}: p50 {lat['runtime']['p50']:.1f} µs (runtime), "
            f"{lat['ort_defaults']['p50']:.1f} µs (ORT defaults); {result['throughput_ips']['value']:,.0f} images/s; "
            f"accuracy {result['accuracy']:.2%} ({errors} errors)",
            file=sys.stderr,
        )
    return {"images": about | ({"files": [p.name for p in image_paths]} if keep else {}), "models": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = dict(QUICK if args.quick else FULL) | ({"runs": args.runs} if args.runs else {})
    settings |= {"threads": 1, "quick": args.quick}
    try:
        if settings["runs"] < 1:
            raise BenchError(f"--runs must be at least 1, not {settings['runs']}")
        models = find_models(args.models)
        image_paths, labels = find_images(args.images)
        about = machine(args.name)
        found = measure(models, image_paths, labels, settings, args.predictions)
    except (BenchError, native.BuildError) as e:
        print(f"python -m runtime.bench: error: {e}", file=sys.stderr)
        return 2
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    out = args.out or Path(re.sub(r"[^\w.-]+", "-", about["name"]) + ".json")
    result = {"schema": VERSION, "date": now, "machine": about, "settings": settings} | found
    result["peak_rss_bytes"] = peak_rss()
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(f"wrote {out} ({len(result['models'])} models, {result['images']['images']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
