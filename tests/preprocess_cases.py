"""The images both parity tests of the preprocessing run on: hand-made ones and MNIST digits as users send them.

    from tests import preprocess_cases
    images = preprocess_cases.cases(folder)   # PIL images: handmade() first, then PER_SET of each user-style set

Used by tests/test_web_preprocess.py (the page's port under Node) and tests/test_native.py (the compiled core),
each against runtime.ink's numpy, so that every implementation is held to the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.measure.user_images import paint, photo
from tests import digits, user_images

PER_SET = 12  # MNIST-derived images per set of tests/user_images.py
NO_DIGIT = 2  # images of handmade() that hold none: the blank and the noise


def handmade() -> list[Image.Image]:
    """Drawn and synthesised here: pens, colours, transparency, uneven light, two with no digit, and four seeded photos
    with shadows and the table beside the paper (test_preprocess's, each through another rule of runtime.ink) and a
    drawing in a fine pen."""
    seven = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(seven).line([(100, 40), (200, 40), (130, 170)], fill=(170, 0, 0), width=9)
    pencil = Image.new("L", (500, 300), 255)
    ImageDraw.Draw(pencil).line([(200, 40), (300, 40), (230, 260)], fill=0, width=1)
    ring = Image.new("L", (90, 120), 0)
    ImageDraw.Draw(ring).ellipse((20, 15, 70, 105), outline=255, width=8)
    mnist = user_images.mnist_sample()
    rng = np.random.default_rng(0)
    glass = digits.transparent(mnist["x_test"][0], rng)
    h, w = 240, 320
    light = 0.45 + 0.5 * np.mgrid[0:h, 0:w][1] / w
    ink = np.zeros((h, w), np.float32)
    ink[70:170, 110:210] = np.asarray(Image.fromarray(mnist["x_test"][1]).resize((100, 100)), np.float32) / 255
    lamp = (light * (1 - 0.8 * ink) + rng.normal(0, 0.03, (h, w))).clip(0, 1)
    blank = Image.new("RGB", (120, 80), "white")
    noise = Image.fromarray(rng.normal(128, 12, (90, 120)).clip(0, 255).astype(np.uint8))
    shadows = [photo(mnist["x_test"][seed], np.random.default_rng(seed)) for seed in (8, 33, 79, 21)]
    fine = paint(mnist["x_test"][225], np.random.default_rng(225))  # a fine pen, found again at more resolution
    return [seven, pencil, ring, glass, Image.fromarray((lamp * 255).astype(np.uint8)), blank, noise, *shadows, fine]


def cases(folder: Path) -> list[Image.Image]:
    """handmade(), then PER_SET images of each set of tests/user_images.py, written to and read back from folder."""
    mnist = user_images.mnist_sample()
    made = [path for name in user_images.SETS for path, _ in user_images.make_set(name, mnist, PER_SET, folder / name)]
    images = []
    for path in made:
        with Image.open(path) as img:
            images.append(img.copy())
    return handmade() + images
