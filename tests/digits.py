"""Test images of digits as people hand them over, built from MNIST test digits and from fonts with Pillow.

    from tests.digits import STYLES, write_style
    cases = write_style("photo", mnist, count=50, folder=tmp_path)  # [(path, label), ...]

Every builder takes a 28x28 uint8 MNIST digit (or, for "typeset", the digit itself) and a numpy Generator,
and returns a PIL image; ``write_style`` saves them in the style's file format. The robustness tests'
bad inputs are here too: ``bad_images``, and ``bomb_png``, a valid 20 000 x 20 000 PNG of 50 KB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont


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


def inverted(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """MNIST upscaled and inverted: black on white, grey levels kept."""
    side = int(rng.integers(28, 600))
    return Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BICUBIC)


def transparent(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """RGBA with a transparent background (whose colour channels are garbage), ink dark or light."""
    side = int(rng.integers(64, 400))
    ink = _ink(digit, round(side * 0.8), rng)
    garbage = rng.integers(0, 256, (side, side, 3), dtype=np.uint8) * (rng.random() < 0.5)
    img = Image.fromarray(garbage.astype(np.uint8)).convert("RGBA")
    alpha = Image.new("L", (side, side), 0)
    alpha.paste(ink, (side // 10, side // 10))
    colour = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)
    img.paste((*colour, 255), (0, 0), alpha)
    img.putalpha(alpha)
    return img


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


STYLES = {
    "paint": ".png",
    "mnist_style": ".gif",
    "inverted": ".bmp",
    "transparent": ".png",
    "photo": ".jpg",
    "typeset": ".png",
}


def write_style(style: str, mnist: dict, count: int, folder: Path, seed: int = 0) -> list[tuple[Path, int]]:
    """``count`` images of ``style`` saved in ``folder``: [(path, true digit)], MNIST test digits in order."""
    rng = np.random.default_rng(seed)
    faces = fonts() if style == "typeset" else []
    cases = []
    for i in range(count):
        label = int(mnist["y_test"][i]) if style != "typeset" else i % 10
        img = typeset(label, rng, faces) if style == "typeset" else globals()[style](mnist["x_test"][i], rng)
        path = folder / f"{style}_{i:03d}_{label}{STYLES[style]}"
        img.save(path, quality=int(rng.integers(70, 95))) if style == "photo" else img.save(path)
        cases.append((path, label))
    return cases


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A valid 1-bit PNG of side x side black pixels: a few kilobytes on disk, side^2 pixels decoded."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def bad_images(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input of the robustness list, written in ``folder``: {case: (path, expected error regex)}."""
    (folder / "empty_dir").mkdir()
    (folder / "notes.png").write_text("hello, not an image")
    (folder / "truncated.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "zero.png").write_bytes(b"")
    Image.new("L", (1, 1), 0).save(folder / "one_pixel.png")
    Image.new("RGB", (300, 200), "white").save(folder / "blank.png")
    bomb_png(folder / "bomb.png")
    return {
        "missing file": (folder / "missing.png", "no such file"),
        "directory with no images": (folder / "empty_dir", "no images in this directory"),
        "non-image file": (folder / "notes.png", "not an image"),
        "truncated PNG": (folder / "truncated.png", "corrupt or truncated image"),
        "0-byte file": (folder / "zero.png", r"empty file \(0 bytes\)"),
        "1x1 image": (folder / "one_pixel.png", "image too small: 1x1 pixels"),
        "blank image": (folder / "blank.png", "no digit found"),
        "20000x20000 image": (folder / "bomb.png", "image too large"),
    }
