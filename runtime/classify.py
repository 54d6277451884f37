"""Classify digit images on the device, with onnxruntime, numpy and Pillow only.

    python -m runtime.classify [--model PATH] [--top K] [--json] [--jobs N] IMAGE_OR_DIR [...]

Prints ``PATH: DIGIT (CONFIDENCE%)`` per image (and the next K-1 candidates with ``--top K``), or with
``--json`` one object per line: ``{"image", "digit", "confidence", "top": [[digit, prob], ...]}``, or
``{"image", "error"}`` for an image that failed, as they are done and in input order (memory stays bounded
over any number of images). A directory means every PNG/JPEG/BMP/GIF in it, sorted. ``--jobs N`` (default:
every core) preprocesses in N processes.
The model defaults to ``artifacts/model.onnx`` under the repo root, or the file named by $RUNTIME_MODEL.

Exit status: 0 when every image was classified, 1 when any failed (the rest are still classified),
2 for a usage error or an unusable model. Errors are one line each on stderr: ``PATH: error: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from runtime import native
from runtime.classifier import MODEL_ENV, Classifier, ModelError, Prediction, default_model
from runtime.preprocess import PreprocessError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what a directory is searched for


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m runtime.classify",
        description="Classify images of handwritten or typeset digits with an ONNX model from the pipeline.",
        epilog="Exit status: 0 all classified, 1 some image failed, 2 usage error or unusable model.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders of PNG/JPEG/BMP/GIF")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help=f"ONNX model from the pipeline (default: ${MODEL_ENV}, else artifacts/model.onnx under the repo root)",
    )
    parser.add_argument("--top", type=int, default=1, metavar="K", help="also show the next K-1 candidates")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes that preprocess images (default: every core)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be at least 1, not {args.top}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    return args


def expand(arguments: list[str]) -> Iterator[tuple[str, str | None]]:
    """(image path, None) for each image to classify, or (argument, error) for one that cannot be."""
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            yield argument, None
            continue
        try:
            found = sorted(p for p in path.iterdir() if _is_image_name(p) and p.is_file())
        except OSError as e:
            yield argument, f"cannot list the directory ({e.strerror})"
            continue
        if not found:
            yield argument, f"no images in this directory (looked for {'/'.join(IMAGE_SUFFIXES)})"
        yield from ((str(p), None) for p in found)


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")  # not ._x.png, .DS_Store


def render(image: str, result: Prediction | PreprocessError, top: int, as_json: bool) -> str:
    if isinstance(result, PreprocessError):
        return json.dumps({"image": image, "error": str(result)}) if as_json else ""
    if as_json:
        best = [[digit, round(p, 6)] for digit, p in result.top[:top]]
        record = {"image": image, "digit": result.digit, "confidence": round(result.confidence, 6), "top": best}
        return json.dumps(record)
    return f"{image}: " + ", ".join(f"{digit} ({p:.1%})" for digit, p in result.top[:top])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = args.model or _relative(default_model())
    try:
        return classify(Classifier(model), expand(args.images), args.top, args.json, args.jobs)
    except ModelError as e:
        print(f"{model}: error: {e.problem}", file=sys.stderr)
        return 2
    except native.BuildError as e:  # RUNTIME_INK=native, and it does not build; or a bad RUNTIME_INK
        print(f"python -m runtime.classify: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _relative(path: Path) -> Path:
    """``path`` relative to the working directory if it is under it (shorter messages), else as it is."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def classify(
    classifier: Classifier, items: Iterable[tuple[str, str | None]], top: int, as_json: bool, jobs: int = 1
) -> int:
    """Classify and print ``items`` from ``expand`` as they are done, in order; the exit status."""
    failed = False
    names: deque[str] = deque()  # of the images read but not printed yet: a block at most

    def images() -> Iterator[str | PreprocessError]:
        for image, error in items:
            names.append(image)
            yield image if error is None else PreprocessError(error)

    for result in classifier.classify_many(images(), jobs):
        image = names.popleft()
        if isinstance(result, PreprocessError):
            failed = True
            print(f"{image}: error: {result}", file=sys.stderr)
        line = render(image, result, top, as_json)
        if line:
            print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
