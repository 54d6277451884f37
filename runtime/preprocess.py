"""Image preprocessing shared by the runtime and the pipeline: any digit image -> an MNIST-style 28x28.

    from runtime.preprocess import to_mnist
    x = to_mnist("photo.jpg")  # float32 [28, 28] in [0, 1], white ink on black, as the models are trained

MNIST was made by scaling each digit so that it fits a 20x20 box (aspect kept, anti-aliased) and placing
it in 28x28 by its centre of mass. ``to_mnist`` does the same to photos and drawings, once it has told ink
from paper:

1. load: a path, PIL image or numpy array; the size is checked before decoding; EXIF orientation; first
   frame; palette, 1/16/32-bit and float pixels become [0, 1]; big images are reduced to WORK_SIZE.
2. alpha: transparent pixels become paper (the opaque part's majority colour, or the colour its ink is not).
3. paper: a quadratic background fitted per channel to the pixels that are not ink is subtracted (uneven
   light), then, if the paper is still not flat, anything wider than a few strokes (a shadow, a table, the
   paper's edge: a white top-hat); ink is what differs from the paper: dark or light, any colour.
4. ink: Otsu threshold over the noise floor, a median filter when noisy, specks and border blobs dropped.
5. crop to the ink, thicken pens much thinner than MNIST's, scale the longer side to 20 px, centre by mass.

This module imports nothing but the standard library, numpy and Pillow; steps 2-4 live in ``runtime.ink``.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from runtime.ink import PreprocessError, _ink, _minus_paper, _onto_paper, _rank, _stroke_width
from runtime.metadata import mnist_to_float

__all__ = ["MAX_PIXELS", "PreprocessError", "load", "mnist_to_float", "to_mnist"]

MAX_PIXELS = 40_000_000  # refuse bigger images before decoding them (a 20 000 x 20 000 PNG would need 1.2 GB)
MIN_SIDE = 8  # px: nothing smaller holds a legible digit
WORK_SIZE = 384  # px: bigger images are reduced to this longer side first (speed and bounded memory)
BOX = 20  # px: the digit's longer side in the output, as in MNIST
SIZE = 28  # px: the output's side
THIN = 1.2  # px at output scale: a pen thinner than this is thickened to STROKE ...
STROKE = 1.8  # ... MNIST's median stroke width (2 x area / perimeter of pixels over 0.5)


def to_mnist(image: str | os.PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """Any digit image (path, PIL image or array) -> float32 [28, 28] in [0, 1]; PreprocessError if none."""
    pixels, alpha = load(image)
    distance, noise = _minus_paper(_onto_paper(pixels, alpha))
    return _centre(_crop(_ink(distance, noise)))


def load(image: str | os.PathLike | Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels float32 [H, W, C] in [0, 1] (C = 1 or 3) and alpha [H, W] (None if opaque), at most WORK_SIZE."""
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _from_pil(image)
    with _open_regular(Path(image)) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise PreprocessError("empty file (0 bytes)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is checked below
                return _from_pil(Image.open(file), draft=True)
        except PreprocessError:
            raise
        except Image.DecompressionBombError:
            raise PreprocessError(f"image too large: over {2 * Image.MAX_IMAGE_PIXELS:,} pixels") from None
        except Image.UnidentifiedImageError:
            raise PreprocessError("not an image (or in a format Pillow cannot read)") from None
        except Exception as e:  # Pillow's decoders raise many kinds (OSError, SyntaxError, struct.error ...)
            raise PreprocessError(f"corrupt or truncated image ({e})") from None


SPECIAL_FILES = {  # what a path that is not a regular file is, for the message
    stat.S_ISDIR: "is a directory, not an image",
    stat.S_ISFIFO: "not a regular file (a FIFO)",
    stat.S_ISCHR: "not a regular file (a character device)",
    stat.S_ISBLK: "not a regular file (a block device)",
    stat.S_ISSOCK: "not a regular file (a socket)",
}


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((problem for test, problem in SPECIAL_FILES.items() if test(mode)), "not a regular file")


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, once it is known to be a regular file: reading a FIFO or a
    device would block or never end. Non-blocking, so that a FIFO swapped in after the check
    does not block the open either; the check is repeated on what was opened."""
    try:
        problem = _not_regular(path.stat().st_mode)
        if problem:
            raise PreprocessError(problem)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise PreprocessError(
            "no such file" if isinstance(e, FileNotFoundError) else f"cannot open ({e.strerror})"
        ) from None
    problem = _not_regular(os.fstat(fd).st_mode)
    if problem:
        os.close(fd)
        raise PreprocessError(problem)
    return os.fdopen(fd, "rb")


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PreprocessError(f"image too large: {width}x{height} pixels (the limit is {MAX_PIXELS:,})")
    if max(width, height) < MIN_SIDE:  # a tight crop of a 1 may well be 4 px wide
        raise PreprocessError(f"image too small: {width}x{height} pixels (at least {MIN_SIDE} px on the longer side)")


def _from_pil(img: Image.Image, draft: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    _check_size(*img.size)
    if draft and img.format == "JPEG":  # only on images opened here: it changes the image object
        img.draft(None, (WORK_SIZE, WORK_SIZE))  # decode at 1/2, 1/4 or 1/8 scale when that is enough
    if "transparency" in img.info or img.mode in ("P", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    elif img.mode.startswith("I;16") and img.mode != "I;16":
        img = img.convert("I")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
        img = img.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV
    if max(img.size) > WORK_SIZE:
        img = img.resize(_reduced(*img.size), Image.Resampling.BOX)  # premultiplies alpha itself
    img = ImageOps.exif_transpose(img)  # after reducing: a small copy
    if img.mode in ("I;16", "I", "F"):  # 16/32-bit integer or float grey: _from_array scales it
        return _from_array(np.asarray(img))
    a = np.asarray(img, np.float32) / 255
    a = a[..., None] if a.ndim == 2 else a
    return _split_alpha(a, has_alpha=img.mode in ("LA", "RGBA"))


def _from_array(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise PreprocessError(f"an image array must be [H, W] or [H, W, 1-4 channels], not {list(a.shape)}")
    _check_size(a.shape[1], a.shape[0])
    if a.dtype in (np.uint8, bool):
        peak = 255.0 if a.dtype == np.uint8 else 1.0
    elif a.dtype == np.uint16:
        peak = 65535.0
    else:  # int32 ('I' mode) or float: guess the range from the values
        top = float(np.nanmax(a)) if a.size else 0.0
        peak = next((p for p in (1.0, 255.0, 65535.0) if top <= p), top)
    a = np.nan_to_num(a.astype(np.float32) / np.float32(peak)).clip(0, 1)
    if max(a.shape[:2]) > WORK_SIZE:
        size = _reduced(a.shape[1], a.shape[0])
        a = np.stack(
            [np.asarray(Image.fromarray(c).resize(size, Image.Resampling.BOX)) for c in a.transpose(2, 0, 1)], -1
        )
    return _split_alpha(a, has_alpha=a.shape[2] in (2, 4))


def _reduced(width: int, height: int) -> tuple[int, int]:
    scale = WORK_SIZE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _split_alpha(a: np.ndarray, has_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    alpha = a[..., -1] if has_alpha else None
    a = a[..., :-1] if has_alpha else a
    if a.shape[2] == 3 and np.abs(a - a[..., :1]).max() < 2 / 255:
        a = a[..., :1]  # grey stored as RGB: one channel does
    return a, (alpha if alpha is not None and alpha.min() < 254 / 255 else None)


def _crop(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box; a pen much thinner than MNIST's (relative to the digit's size) is thickened."""
    ys, xs = np.nonzero(ink)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    width, length = _stroke_width(crop > 0.35), max(crop.shape)
    if width * BOX / length < THIN:  # grow by k - 1 px so that (width + k - 1) / (length + k - 1) = STROKE / BOX
        k = 1 + 2 * round((STROKE * length / BOX - width) / (1 - STROKE / BOX) / 2)
        crop = _rank(np.pad(crop, k // 2), k) if k > 1 else crop
    return crop


def _centre(crop: np.ndarray) -> np.ndarray:
    """Scale the longer side to BOX px (anti-aliased) and place the centre of mass at (14, 14) of 28x28."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = crop if size == (w, h) else np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    digit = digit.clip(0, 1)
    ys, xs = np.indices(digit.shape)
    top = round(SIZE / 2 - float((ys * digit).sum() / digit.sum()))
    left = round(SIZE / 2 - float((xs * digit).sum() / digit.sum()))
    out = np.zeros((SIZE, SIZE), np.float32)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + digit.shape[0], SIZE), min(left + digit.shape[1], SIZE)
    out[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return out
