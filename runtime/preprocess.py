"""Image preprocessing shared by the runtime and the pipeline: any digit image -> an MNIST-style 28x28.

    from runtime.preprocess import to_mnist
    x = to_mnist("photo.jpg")  # float32 [28, 28] in [0, 1], white ink on black, as the models are trained

MNIST was made by scaling each digit so that it fits a 20x20 box (aspect kept, anti-aliased) and placing
it in 28x28 by its centre of mass. ``to_mnist`` does the same to photos and drawings, once it has told ink
from paper:

1. decode (``runtime.decode``): a path, PIL image or numpy array; the size is checked before decoding; EXIF
   orientation; first frame; palette, 1/16/32-bit and float pixels become [0, 1]; the image is reduced by a
   whole factor to at most WORK_SIZE px, which is enough to tell ink from paper.
2. alpha: transparent pixels become paper (the opaque part's majority colour, or the colour its ink is not).
3. paper: a flat or quadratic background fitted per channel to the pixels that are not ink is subtracted
   (uneven light), then, if the paper is still not flat, anything wider than a few strokes (a shadow, a table,
   the paper's edge: a white top-hat); ink is what differs from the paper: dark or light, any colour.
4. ink: Otsu threshold over the noise floor, a median filter when noisy, specks and border blobs dropped.
   A digit smaller than DETAIL px there, or in strokes thinner than THIN_WORK px, is found again, steps 2-4, on
   a region around it at more resolution.
5. crop to the ink, thicken pens much thinner than MNIST's, scale the longer side to 20 px, centre by mass.

Steps 2-5 run in C (``runtime/native/ink.c``, built for this machine the first time; it also does step 1's reduction
of opaque 8-bit images, to Pillow's pixels) or, where it cannot be built, in numpy (``runtime.ink`` and the helpers
below, the reference the C is held to): ``core`` chooses. This module imports nothing but the standard library, numpy
and Pillow. The constants are in ``runtime/preprocess.json``, which the C core and the page (``web/``, which runs the
same C built for WebAssembly) read too.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from runtime import native
from runtime.constants import PREPROCESS
from runtime.decode import MAX_PIXELS, WORK_SIZE, open_image
from runtime.ink import PreprocessError, _ink, _minus_paper, _onto_paper, _rank, _stroke_width
from runtime.metadata import mnist_to_float

__all__ = ["MAX_PIXELS", "PreprocessError", "mnist_to_float", "to_mnist"]

DETAIL, DETAIL_SIZE = PREPROCESS["DETAIL"], PREPROCESS["DETAIL_SIZE"]
BOX, SIZE = PREPROCESS["BOX"], PREPROCESS["SIZE"]
THIN, STROKE, INK_CUT = PREPROCESS["THIN"], PREPROCESS["STROKE"], PREPROCESS["INK_CUT"]
THIN_WORK = PREPROCESS["THIN_WORK"]


def to_mnist(image: str | os.PathLike | Image.Image | np.ndarray, *, core: str | object | None = None) -> np.ndarray:
    """Any digit image (path, PIL image or array) -> float32 [28, 28] in [0, 1]; PreprocessError if none.

    ``core`` does steps 2-5: "native" (runtime/native/ink.c, built for this machine) or "numpy" (runtime.ink, the
    reference); by default native when it builds here, as ``runtime.native.load`` says. It may also be an object
    with the same ``find`` and ``centre``, and ``reduce`` if it has one (``runtime.bench_images`` passes one that
    times the native core's)."""
    analysis = _core(core)
    reduce = getattr(analysis, "reduce", None)  # the compiled core reduces Pillow's pixels faster, to the same ones
    source = open_image(image)
    pixels, alpha, factor = source.region(None, WORK_SIZE, reduce)
    ink, box, stroke = analysis.find(pixels, alpha)
    longest = max(box[2] - box[0], box[3] - box[1])
    if (longest < DETAIL or stroke < THIN_WORK) and factor > 1:  # a small digit, or a fine pen the reduction blurred:
        region = _around(box, max(longest // 2, 2), factor, source.size)  # found again with more pixels
        want = max(region[2] - region[0], region[3] - region[1]) * DETAIL_SIZE // (longest * factor)
        ink = analysis.find(*source.region(region, max(want, 1), reduce)[:2])[0]
    return analysis.centre(ink)


class Numpy:
    """Steps 2-5 in numpy (runtime.ink): the reference the compiled core is held to, and its stand-in."""

    @staticmethod
    def find(pixels: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
        """The ink [h, w], its box and the stroke width of its pixels over INK_CUT."""
        distance, noise = _minus_paper(_onto_paper(pixels, alpha))
        ink = _ink(distance, noise)
        return ink, _box(ink), _stroke_width(ink > INK_CUT)

    @staticmethod
    def centre(ink: np.ndarray) -> np.ndarray:
        return _centre(_crop(ink))


def _core(name: str | object | None) -> object:
    if name is not None and not isinstance(name, str) and hasattr(name, "find") and hasattr(name, "centre"):
        return name
    if name not in (None, "native", "numpy"):
        raise ValueError(f"core must be 'native', 'numpy' or an object with find and centre, not {name!r}")
    found = native.load() if name != "numpy" else None
    if found is None and name == "native":
        raise native.BuildError(f"the native core is off here ({native.CHOICE}=numpy, or it did not build)")
    return found or Numpy


def _around(box: tuple[int, int, int, int], grow: int, factor: int, size: tuple[int, int]) -> tuple[int, ...]:
    """``box`` of the reduced image grown by ``grow`` px on each side, in the full image's pixels, within it."""
    left, top, right, bottom = ((v + d * grow) * factor for v, d in zip(box, (-1, -1, 1, 1), strict=True))
    return max(left, 0), max(top, 0), min(right, size[0]), min(bottom, size[1])


def _box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The ink's bounding box: left, top, right, bottom (exclusive)."""
    ys, xs = np.nonzero(ink.any(1)), np.nonzero(ink.any(0))
    return int(xs[0][0]), int(ys[0][0]), int(xs[0][-1]) + 1, int(ys[0][-1]) + 1


def _crop(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box; a pen much thinner than MNIST's (relative to the digit's size) is thickened."""
    left, top, right, bottom = _box(ink)
    crop = ink[top:bottom, left:right]
    width, length = _stroke_width(crop > INK_CUT), max(crop.shape)
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
