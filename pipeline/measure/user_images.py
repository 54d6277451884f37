"""User-style digit images, seeded, from MNIST digits and Pillow's fonts: for the image-path benchmark and tests.

    from pipeline.measure.user_images import SETS, make_set
    cases = make_set("tight_wb", {"x_test": x, "y_test": y}, 50, folder)   # [(path, label), ...]

Each set is a folder of ``LABEL_NNNN.EXT`` files (what ``runtime.bench_images`` reads). The sets:
photos of pen digits on paper (uneven light, shadows, noise, colour ink, JPEG), scans (flat paper, a
little blur and noise), drawings from a paint program, white-on-black, typeset digits in Pillow's own
fonts, and tight crops of MNIST digits (black on white, white on black) whose ink touches 1-4 edges, at
several scales. Every builder takes a 28x28 uint8 MNIST digit (or, for "typeset", the digit itself) and
a numpy Generator, and returns a PIL image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SCALES = (1, 2, 4, 8)  # tight crops: the digit's ink box upscaled by these


def _ink(digit: np.ndarray, height: int, rng: np.random.Generator, crisp: bool = False) -> Image.Image:
    """The MNIST digit's ink ('L', white = ink) scaled to ``height`` px, smooth or as a hard-edged brush
    (half the brushes much thinner than MNIST's pen, down to a few pixels)."""
    ink = Image.fromarray(digit).resize((height, height), Image.Resampling.BICUBIC)
    if crisp:
        cut = int(rng.integers(60, 160))
        ink = ink.point(lambda v: 255 if v > cut else 0)
        thin = ink.filter(ImageFilter.MinFilter(2 * (height // 50) + 1))
        if rng.random() < 0.5 and _whole(thin, ink):
            ink = thin
    return ink


def _whole(thin: Image.Image, ink: Image.Image) -> bool:
    """Whether eroding the strokes to ``thin`` left the digit whole (its box at least 85% of the original's)."""
    box, thin_box = ink.getbbox(), thin.getbbox()
    return thin_box is not None and max(np.subtract(thin_box[2:], thin_box[:2]) / np.subtract(box[2:], box[:2])) > 0.85


def paint(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Drawn in a paint program: dark strokes on a white 500x300 canvas, off-centre."""
    canvas = Image.new("RGB", (500, 300), "white")
    size = int(rng.integers(90, 280))
    ink = _ink(digit, size, rng, crisp=True)
    colour = tuple(int(c) for c in rng.choice([(0, 0, 0), (20, 20, 160), (170, 0, 0), (0, 90, 0)]))
    at = (int(rng.integers(0, 500 - size)), int(rng.integers(0, 300 - size)))
    canvas.paste(colour, at, ink)
    return canvas


def mnist_style(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """White on black like MNIST, at any size, with some margin."""
    side = int(rng.integers(28, 900))
    margin = rng.uniform(0, 0.3)
    canvas = Image.new("L", (side, round(side * rng.uniform(0.8, 1.25))), 0)
    size = min(max(16, round(side * (1 - margin))), canvas.height)
    at = int(rng.integers(0, canvas.width - size + 1)), int(rng.integers(0, canvas.height - size + 1))
    canvas.paste(255, at, _ink(digit, size, rng))
    return canvas


def photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A phone photo of a pen digit on paper: uneven light (a lamp's fall-off, a gradient, sometimes a soft
    shadow), sensor noise, a slight tilt, sometimes the table beyond the paper's edge; JPEG when written."""
    w, h = (640, 480) if rng.random() < 0.5 else (1024, 768)
    size = round(h * rng.uniform(0.3, 0.7))
    ink = _ink(digit, size, rng).rotate(float(rng.uniform(-10, 10)), Image.Resampling.BICUBIC)
    ink = np.asarray(ink.filter(ImageFilter.GaussianBlur(size / 250)), np.float32) / 255
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    light = 0.95 - rng.uniform(0.1, 0.35) * (np.hypot(x - cx, y - cy) / np.hypot(w, h))  # falls off from a lamp
    light += rng.uniform(-0.1, 0.1) * (x / w - 0.5) + rng.uniform(-0.1, 0.1) * (y / h - 0.5)
    if rng.random() < 0.3:  # the phone's shadow: a soft edge across the page
        light *= 1 - 0.3 / (1 + np.exp(-(x * rng.uniform(-1, 1) + y - rng.uniform(0.3, 0.7) * h) / 20))
    paper = np.array([0.93, 0.91, 0.86], np.float32) * light[..., None]  # warm paper
    pen = np.array(rng.choice([(0.1, 0.1, 0.15), (0.1, 0.15, 0.45)]), np.float32) * light[..., None]
    table = round(rng.uniform(0.05, 0.15) * w) if rng.random() < 0.3 else 0  # paper not filling the frame
    top, left = int(rng.integers(0, h - size)), int(rng.integers(table, w - size))
    a = np.zeros((h, w, 1), np.float32)
    a[top : top + size, left : left + size, 0] = ink
    img = paper * (1 - a) + pen * a
    img[:, :table] = np.array([0.25, 0.18, 0.12], np.float32) * light[:, :table, None]
    img += rng.normal(0, rng.uniform(0.01, 0.05), (h, w, 1)).astype(np.float32)
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def fonts() -> list[ImageFont.FreeTypeFont]:
    """Pillow's own font plus the DejaVu TrueType faces, if the machine has them.

    Only these: the test images must not change with whatever else is installed (Chromium brings
    Liberation's Times-like serif faces, which a smoke model trained for one epoch has never seen)."""
    found = sorted(p for d in ("/usr/share/fonts", "/usr/local/share/fonts") for p in Path(d).glob("**/*.ttf"))
    faces = [p for p in found if p.name.startswith("DejaVu") and "ExtraLight" not in p.name]
    return [ImageFont.load_default(100)] + [ImageFont.truetype(str(p), 100) for p in faces]


def typeset(label: int, rng: np.random.Generator, faces: list) -> Image.Image:
    """A digit typeset in one of ``faces``, dark on light, at a random size and place."""
    face = faces[int(rng.integers(len(faces)))].font_variant(size=int(rng.integers(24, 160)))
    canvas = Image.new("L", (300, 200), int(rng.integers(200, 256)))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), str(label), font=face)
    at = (int(rng.integers(0, max(1, 300 - right))) - left, int(rng.integers(0, max(1, 200 - bottom))) - top)
    draw.text((at[0] + left, at[1] + top), str(label), fill=int(rng.integers(0, 60)), font=face)
    return canvas


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


drawing, white_on_black = paint, mnist_style  # the sets' names for them


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
    faces = fonts() if name == "typeset" else []
    cases = []
    for i in range(count):
        j = i % len(mnist["y_test"])
        label = i % 10 if name == "typeset" else int(mnist["y_test"][j])
        img = typeset(label, rng, faces) if name == "typeset" else globals()[name](mnist["x_test"][j], rng)
        path = folder / f"{label}_{i:04d}{SETS[name]}"
        img.save(path, quality=int(rng.integers(70, 95))) if SETS[name] == ".jpg" else img.save(path)
        cases.append((path, label))
    return cases
