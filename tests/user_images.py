"""User-style image sets for the image-path benchmark and tests: seeded, built from MNIST digits and fonts.

    python -m tests.user_images OUT_DIR [--count 100] [--sets photo tight_bw ...]
    from tests.user_images import SETS, make_set, mnist_sample
    cases = make_set("tight_wb", mnist_sample(), 50, tmp_path)   # [(path, label), ...]

Each set is a folder of ``LABEL_NNNN.EXT`` files (what ``runtime.bench_images`` reads). The sets:
photos of pen digits on paper (uneven light, shadows, noise, colour ink, JPEG), scans (flat paper, a
little blur and noise), drawings from a paint program, white-on-black, typeset digits in Pillow's own
fonts, and tight crops of MNIST digits (black on white, white on black) whose ink touches 1-4 edges, at
several scales. The MNIST digits come from ``tests/data/mnist_sample.npz``, 500 test digits committed so
that the fast tier needs no download (``--refresh-sample`` rebuilds it from the pipeline's cache).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tests import digits

SAMPLE = Path(__file__).with_name("data") / "mnist_sample.npz"
SAMPLE_SIZE = 500  # MNIST test digits in SAMPLE, the first ones of the test split
SCALES = (1, 2, 4, 8)  # tight crops: the digit's ink box upscaled by these


def mnist_sample() -> dict[str, np.ndarray]:
    """The committed MNIST test digits, in the shape of the pipeline's cache: x_test [N, 28, 28], y_test [N]."""
    with np.load(SAMPLE) as f:
        return {"x_test": f["x"], "y_test": f["y"]}


def tight(digit: np.ndarray, rng: np.random.Generator, dark_on_light: bool) -> Image.Image:
    """The digit cropped to its ink, 1-4 of its edges left touching the ink, the others with a margin."""
    ys, xs = np.nonzero(digit)
    box = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = int(rng.choice(SCALES))
    h, w = box.shape
    img = Image.fromarray(box).resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    touching = rng.permutation(4)[: int(rng.integers(1, 5))]  # which of top, right, bottom, left stay tight
    margin = [0 if side in touching else round(rng.uniform(0.05, 0.3) * max(img.size)) for side in range(4)]
    top, right, bottom, left = margin
    canvas = Image.new("L", (img.width + left + right, img.height + top + bottom), 0)
    canvas.paste(img, (left, top))
    return Image.fromarray(255 - np.asarray(canvas)) if dark_on_light else canvas


def tight_bw(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A tight crop, black ink on white."""
    return tight(digit, rng, dark_on_light=True)


def tight_wb(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A tight crop, white ink on black, as MNIST itself."""
    return tight(digit, rng, dark_on_light=False)


def scan(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A flatbed scan of a pen digit: even light on off-white paper, a slight blur, a little noise, colour ink."""
    side = int(rng.integers(150, 900))
    size = round(side * rng.uniform(0.4, 0.8))
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
    a = np.zeros((side, side, 1), np.float32)
    top, left = (int(rng.integers(0, side - size + 1)) for _ in range(2))
    a[top : top + size, left : left + size, 0] = ink
    paper = np.array([rng.uniform(0.85, 1.0)] * 3, np.float32) - np.array([0, 0.01, 0.03], np.float32)
    pen = np.array(rng.choice([(0.05, 0.05, 0.1), (0.1, 0.15, 0.5), (0.3, 0.3, 0.3)]), np.float32)
    img = paper * (1 - a) + pen * a + rng.normal(0, 0.01, (side, side, 1)).astype(np.float32)
    out = Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(side / 600))


def drawing(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    return digits.paint(digit, rng)


def white_on_black(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    return digits.mnist_style(digit, rng)


def photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    return digits.photo(digit, rng)


SETS = {  # name -> file format
    "photo": ".jpg",
    "scan": ".png",
    "drawing": ".png",
    "white_on_black": ".png",
    "typeset": ".png",
    "tight_bw": ".png",
    "tight_wb": ".png",
}
USER_STYLE = ("photo", "scan", "drawing", "typeset")  # the sets the speed target is set on


def make_set(name: str, mnist: dict, count: int, folder: Path, seed: int = 0) -> list[tuple[Path, int]]:
    """``count`` images of set ``name`` in ``folder`` (made if needed): [(path, true digit)]."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, list(SETS).index(name)])
    faces = digits.fonts() if name == "typeset" else []
    cases = []
    for i in range(count):
        j = i % len(mnist["y_test"])
        label = i % 10 if name == "typeset" else int(mnist["y_test"][j])
        img = digits.typeset(label, rng, faces) if name == "typeset" else globals()[name](mnist["x_test"][j], rng)
        path = folder / f"{label}_{i:04d}{SETS[name]}"
        img.save(path, quality=int(rng.integers(70, 95))) if SETS[name] == ".jpg" else img.save(path)
        cases.append((path, label))
    return cases


def refresh_sample(cache: Path) -> None:
    """Rewrite SAMPLE from the pipeline's MNIST cache (``artifacts/data/mnist.npz``)."""
    with np.load(cache) as f:
        x, y = f["x_test"][:SAMPLE_SIZE], f["y_test"][:SAMPLE_SIZE]
    SAMPLE.parent.mkdir(exist_ok=True)
    np.savez_compressed(SAMPLE, x=x, y=y)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.user_images", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write one sub-folder per set into")
    p.add_argument("--count", type=int, default=100, help="images per set")
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--refresh-sample", type=Path, metavar="MNIST_NPZ", help="rebuild the committed sample first")
    args = p.parse_args(argv)
    if args.refresh_sample:
        refresh_sample(args.refresh_sample)
    mnist = mnist_sample()
    for name in args.sets:
        make_set(name, mnist, args.count, args.out / name)
        print(f"{args.out / name}: {args.count} images")


if __name__ == "__main__":
    main()
