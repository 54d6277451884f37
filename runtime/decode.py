"""Step 1 of ``runtime.preprocess``: any image -> a Source, whose regions come reduced by a whole factor, as floats.

    from runtime.decode import open_image
    source = open_image("photo.jpg")                  # a path, PIL image or numpy array; checked before decoding
    pixels, alpha, factor = source.region(None, 120)  # the whole image, its longer side reduced to at most 120 px

A path is opened only if it is a regular file, and its size is checked before decoding; JPEGs decode at
1/2, 1/4 or 1/8 scale when that still leaves WORK_SIZE; EXIF orientation is applied; palette, 1-bit,
CMYK and the like become RGB(A), 16/32-bit and float pixels [0, 1]. Reducing is Pillow's ``reduce``
(a box average over whole blocks, alpha premultiplied), so only the pixels that are needed are made; the
compiled core (``runtime.native``) does the same for opaque 8-bit images, to the same pixels, in up to half
the time, when ``region`` is given its ``reduce``.

This module imports nothing but the standard library, numpy and Pillow.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from runtime.constants import PREPROCESS
from runtime.ink import PreprocessError

MAX_PIXELS = PREPROCESS["MAX_PIXELS"]
MIN_SIDE = PREPROCESS["MIN_SIDE"]
WORK_SIZE = PREPROCESS["WORK_SIZE"]
ORIENTATION = 0x0112  # the EXIF tag
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # non-blocking: see _open_regular
EIGHT_BIT = ("L", "LA", "RGB", "RGBA")  # kept as Pillow images; the rest become float arrays
SPECIAL_FILES = {  # what a path that is not a regular file is, for the message
    stat.S_ISDIR: "is a directory, not an image",
    stat.S_ISFIFO: "not a regular file (a FIFO)",
    stat.S_ISCHR: "not a regular file (a character device)",
    stat.S_ISBLK: "not a regular file (a block device)",
    stat.S_ISSOCK: "not a regular file (a socket)",
}


Reduce = Callable[[Image.Image, tuple[int, int, int, int], int], "np.ndarray | None"]


class Source:
    """A decoded image: an 8-bit Pillow image or a float array [H, W, C] in [0, 1]; regions of it, reduced."""

    def __init__(self, image: Image.Image | np.ndarray) -> None:
        self.image = image
        self.size = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])

    def region(
        self, box: tuple[int, int, int, int] | None, longest: int, reduce: Reduce | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Pixels float32 [h, w, C] (C = 1 or 3) and alpha [h, w] (None if opaque) of ``box`` (left, top, right,
        bottom; None: all), reduced by the smallest whole factor that brings its longer side to ``longest``.
        ``reduce`` (the compiled core's) may do it for a Pillow image, with the same pixels; it returns None for
        those it does not take (runtime.native's Native.reduce)."""
        box = box or (0, 0, *self.size)
        factor = max(1, math.ceil(max(box[2] - box[0], box[3] - box[1]) / longest))
        if isinstance(self.image, Image.Image):
            pixels = reduce(self.image, box, factor) if reduce else None
            if pixels is not None:  # only opaque modes: alpha is None
                return pixels, None, factor
            img = self.image.reduce(factor, box) if factor > 1 else self.image.crop(box)
            a = np.asarray(img).astype(np.float32) / 255  # from uint8: np.asarray(img, np.float32) is far slower
            a = a[..., None] if a.ndim == 2 else a
            return (*_split_alpha(a, has_alpha=img.mode in ("LA", "RGBA")), factor)
        a = _block_mean(self.image[box[1] : box[3], box[0] : box[2]], factor)
        return (*_split_alpha(a, has_alpha=a.shape[2] in (2, 4)), factor)


def open_image(image: str | os.PathLike | Image.Image | np.ndarray) -> Source:
    if isinstance(image, np.ndarray):
        return Source(_from_array(image))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    file, size = _open_regular(image)
    with file:
        if size == 0:
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


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((problem for test, problem in SPECIAL_FILES.items() if test(mode)), "not a regular file")


def _open_regular(path: str | os.PathLike) -> tuple[BinaryIO, int]:
    """``path`` opened for reading and its size, once what was opened is known to be a regular file: reading a
    FIFO or a device would block or never end. Opened non-blocking, so that opening a FIFO does not block
    either; the check is on the open file, so a FIFO swapped in for the file cannot slip past it."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as e:  # a socket (or, on Windows, a directory) cannot be opened: say what it is
        try:
            problem = _not_regular(os.stat(path).st_mode)
        except OSError:
            problem = None
        if problem:
            raise PreprocessError(problem) from None
        raise PreprocessError(
            "no such file" if isinstance(e, FileNotFoundError) else f"cannot open ({e.strerror})"
        ) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):
        os.close(fd)
        raise PreprocessError(_not_regular(found.st_mode))
    return open(fd, "rb"), found.st_size  # open, not os.fdopen: the same file object, in fewer steps


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PreprocessError(f"image too large: {width}x{height} pixels (the limit is {MAX_PIXELS:,})")
    if max(width, height) < MIN_SIDE:  # a tight crop of a 1 may well be 4 px wide
        raise PreprocessError(f"image too small: {width}x{height} pixels (at least {MIN_SIDE} px on the longer side)")


def _from_pil(img: Image.Image, draft: bool = False) -> Source:
    _check_size(*img.size)
    if draft and img.format == "JPEG":  # only on images opened here: it changes the image object
        img.draft(None, (WORK_SIZE, WORK_SIZE))  # decode at 1/2, 1/4 or 1/8 scale when that is enough
    if "transparency" in img.info or img.mode in ("P", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    elif img.mode not in (*EIGHT_BIT, "I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = img.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV
    if img.getexif().get(ORIENTATION, 1) != 1:  # exif_transpose would copy the image even when upright
        img = ImageOps.exif_transpose(img)
    if img.mode in EIGHT_BIT:
        img.load()
        return Source(img)
    if img.mode.startswith("I;16") and img.mode != "I;16":
        img = img.convert("I")
    return Source(_from_array(np.asarray(img)))  # 16/32-bit integer or float grey: _from_array scales it


def _from_array(a: np.ndarray) -> np.ndarray:
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
    return np.nan_to_num(a.astype(np.float32) / np.float32(peak)).clip(0, 1)


def _block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each factor x factor block (the last row and column of blocks may be partial)."""
    if factor == 1:
        return a
    h, w, c = a.shape
    rows, cols = -(-h // factor), -(-w // factor)
    padded = np.zeros((rows * factor, cols * factor, c + 1), np.float32)
    padded[:h, :w, :c], padded[:h, :w, c] = a, 1
    sums = padded.reshape(rows, factor, cols, factor, c + 1).sum((1, 3))
    return sums[..., :c] / sums[..., c:]


def _split_alpha(a: np.ndarray, has_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    alpha = a[..., -1] if has_alpha else None
    a = a[..., :-1] if has_alpha else a
    if a.shape[2] == 3 and all(np.abs(s - s[..., :1]).max() < 2 / 255 for s in (a[::4, ::4], a)):
        a = a[..., :1]  # grey stored as RGB: one channel does (a sparse grid first: most colour shows there)
    return a, (alpha if alpha is not None and alpha.min() < 254 / 255 else None)
