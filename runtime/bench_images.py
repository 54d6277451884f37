"""The image path measured against decoding the file: per set of labelled images, time and accuracy.

    python -m runtime.bench_images DIR [--model PATH] [--repeat 3] [--out FILE.json]

DIR holds one folder per set (or is itself one set) of labelled images, ``LABEL_*.png`` and so on
(``python -m tests.user_images DIR`` writes the project's own). For every image, in turn and in the
same loop so that the machine's drift hits both alike: Pillow's decode of the file (``Image.open``
then ``load``) and ``runtime.preprocess.to_mnist`` of it, each the least CPU time of the calling
thread in ``--repeat`` runs (the wall clock is kept for images/s), and, when the compiled core
(``runtime.native``) does the analysis, ``to_mnist`` with numpy's too and the part of ``to_mnist``
spent in the compiled analysis (what is left is the decode, the reduction and the calls from Python:
a floor no faster analysis goes below). Per set: the median of each, the ratio to the decode, and the
accuracy of the model (an image with no digit found counts as wrong); then images/s through
``Classifier.classify_many`` over every set, with one job and with every core. Prints a table;
``--out`` also writes the figures as JSON (the pipeline's images stage writes ``images.json`` with it).
Exit status: 0 measured, 2 for a usage error, no images or an unusable model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from runtime import native
from runtime.bench import BenchError, find_images
from runtime.classifier import Classifier, ModelError, default_model
from runtime.preprocess import PreprocessError, to_mnist

VERSION = 3  # of the JSON this writes: 2 added core and numpy_ms, 3 analysis_ms


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m runtime.bench_images", description=__doc__.split("\n\n")[0])
    p.add_argument("images", type=Path, metavar="DIR", help="a folder of sets, or of labelled images")
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: as runtime.classify)")
    p.add_argument("--repeat", type=int, default=3, help="runs per image of each measurement; the best counts")
    p.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    return p.parse_args(argv)


def find_sets(folder: Path) -> dict[str, Path]:
    """Set name -> folder: the sub-folders holding labelled images, else ``folder`` itself."""
    if not folder.is_dir():
        raise BenchError(f"{folder}: no such folder")
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    sets = {p.name: p for p in subs if any(c.name[:1].isdigit() for c in p.iterdir())}
    return sets or {folder.name: folder}


def best_ns(fn, repeat: int) -> int:
    """The least CPU time of this thread in ``repeat`` calls of ``fn`` (decoding and the analysis run in the calling
    thread): on a busy machine the wall clock charges other processes' time slices to the longer of two
    measurements, and the process's CPU time charges numpy's BLAS threads, which spin for a while after the numpy
    core's least-squares fit; this thread's CPU time does neither."""
    best = None
    for _ in range(repeat):
        start = time.thread_time_ns()
        fn()
        took = time.thread_time_ns() - start
        best = took if best is None else min(best, took)
    return best


class Timed:
    """The compiled analysis (``find`` and ``centre``, as ``to_mnist`` calls them) adding the CPU time this thread
    spends in it to ``spent``: what of ``to_mnist`` is the analysis, and what is the rest (decoding, reducing, the
    calls from Python)."""

    def __init__(self, core: native.Native) -> None:
        self.core, self.spent = core, 0
        self.reduce = core.reduce  # the reduction, untimed: it is the rest's, as Pillow's is without the core

    def find(self, pixels: np.ndarray, alpha: np.ndarray | None) -> tuple:
        return self._timed(self.core.find, pixels, alpha)

    def centre(self, ink: np.ndarray) -> np.ndarray:
        return self._timed(self.core.centre, ink)

    def _timed(self, call, *args):
        start = time.thread_time_ns()
        try:
            return call(*args)
        finally:  # a PreprocessError's time counts too: to_mnist spent it
            self.spent += time.thread_time_ns() - start


def analysis_ns(path: Path, core: native.Native, repeat: int) -> int:
    """The least CPU time ``to_mnist`` of ``path`` spends in the compiled analysis, in ``repeat`` runs."""
    best = None
    for _ in range(repeat):
        timed = Timed(core)
        preprocess(path, timed)
        best = timed.spent if best is None else min(best, timed.spent)
    return best


def decode(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def preprocess(path: Path, core: str | Timed | None = None) -> np.ndarray | None:
    try:
        return to_mnist(path, core=core)
    except PreprocessError:
        return None


def measure_set(clf: Classifier, folder: Path, repeat: int) -> dict:
    paths, labels = find_images(folder)
    decode_ns, mnist_ns, numpy_ns, analysis, images = [], [], [], [], []
    compiled = native.load()
    for path in paths:
        decode_ns.append(best_ns(lambda p=path: decode(p), repeat))
        mnist_ns.append(best_ns(lambda p=path: preprocess(p), repeat))
        if compiled:
            numpy_ns.append(best_ns(lambda p=path: preprocess(p, "numpy"), repeat))
            analysis.append(analysis_ns(path, compiled, repeat))
        images.append(preprocess(path))
    found = [x for x in images if x is not None]
    digits = iter(clf.predict(np.stack(found)).argmax(1).tolist() if found else [])
    predicted = [clf.digits[next(digits)] if x is not None else None for x in images]
    right = sum(p == y for p, y in zip(predicted, labels, strict=True))
    decode_ms, mnist_ms = float(np.median(decode_ns)) / 1e6, float(np.median(mnist_ns)) / 1e6
    numpy_ms = float(np.median(numpy_ns)) / 1e6 if numpy_ns else mnist_ms
    return {
        "images": len(paths),
        "decode_ms": round(decode_ms, 3),
        "to_mnist_ms": round(mnist_ms, 3),
        "ratio": round(mnist_ms / decode_ms, 2),
        "numpy_ms": round(numpy_ms, 3),  # to_mnist with runtime.ink's numpy: the same as to_mnist_ms without native
        # of to_mnist, the time in the compiled analysis (None without it): the rest is the decode, the reduction
        # and the calls, which a faster analysis cannot take below (to_mnist_ms - analysis_ms) / decode_ms
        "analysis_ms": round(float(np.median(analysis)) / 1e6, 3) if analysis else None,
        "accuracy": round(right / len(paths), 4),
        "no_digit": sum(x is None for x in images),
    }


def throughput(clf: Classifier, paths: list[Path], jobs: int) -> dict:
    """Images per second through ``Classifier.classify_many`` (decode, to_mnist, the model) with ``jobs``."""
    start = time.perf_counter()
    done = sum(1 for _ in clf.classify_many(paths, jobs=jobs))
    return {"jobs": jobs, "images": done, "images_per_s": round(done / (time.perf_counter() - start), 1)}


def measure(clf: Classifier, sets: dict[str, Path], repeat: int, report=print) -> dict:
    """Every set's figures, and the throughput over all of them with one job and with every core."""
    results = {}
    core = "native" if native.load() else "numpy"
    report(f"to_mnist's analysis: {core} ({'runtime/native/ink.c' if core == 'native' else 'runtime.ink'})")
    head = f"{'set':<16}{'images':>7}{'decode ms':>11}{'to_mnist ms':>13}{'ratio':>7}{'analysis ms':>13}"
    report(head + f"{'numpy ms':>10}{'accuracy':>10}{'none':>6}")
    for name, folder in sets.items():
        r = results[name] = measure_set(clf, folder, repeat)
        analysis = "-" if r["analysis_ms"] is None else f"{r['analysis_ms']:.2f}"
        report(
            f"{name:<16}{r['images']:>7}{r['decode_ms']:>11.2f}{r['to_mnist_ms']:>13.2f}{r['ratio']:>7.2f}"
            f"{analysis:>13}{r['numpy_ms']:>10.2f}{r['accuracy']:>10.1%}{r['no_digit']:>6}"
        )
    paths = [p for folder in sets.values() for p in find_images(folder)[0]]
    speeds = [throughput(clf, paths, jobs) for jobs in sorted({1, os.cpu_count() or 1})]
    report(", ".join(f"{t['images_per_s']:,.0f} images/s with {t['jobs']} job(s)" for t in speeds))
    return {"schema": VERSION, "model": clf.path.name, "repeat": repeat, "cores": os.cpu_count(), "core": core,
            "sets": results, "throughput": speeds}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.repeat < 1:
            raise BenchError(f"--repeat must be at least 1, not {args.repeat}")
        sets = find_sets(args.images)
        try:
            clf = Classifier(args.model or default_model())
        except ModelError as e:
            raise BenchError(f"{e.path}: {e.problem}") from None
        record = measure(clf, sets, args.repeat, report=lambda line: print(line, flush=True))
    except (BenchError, native.BuildError) as e:
        print(f"python -m runtime.bench_images: error: {e}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
