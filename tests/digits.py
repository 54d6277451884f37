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
from PIL import Image

from pipeline.measure.user_images import _ink, fonts, mnist_style, paint, photo, typeset  # noqa: F401 (its STYLES)


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
