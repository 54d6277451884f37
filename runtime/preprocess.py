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

This module imports nothing but the standard library, numpy and Pillow.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageFilter, ImageOps

MAX_PIXELS = 40_000_000  # refuse bigger images before decoding them (a 20 000 x 20 000 PNG would need 1.2 GB)
MIN_SIDE = 8  # px: nothing smaller holds a legible digit
WORK_SIZE = 384  # px: bigger images are reduced to this longer side first (speed and bounded memory)
MIN_CONTRAST = 0.08  # ink must differ from paper by this fraction of full scale ...
NOISE_SIGMAS = 4.0  # ... and by this many standard deviations of the paper's noise
SPECK = 0.05  # ink blobs under this fraction of the largest are specks, unless inside the digit's box
BOX = 20  # px: the digit's longer side in the output, as in MNIST
SIZE = 28  # px: the output's side
THIN = 1.2  # px at output scale: a pen thinner than this is thickened to STROKE ...
STROKE = 1.8  # ... MNIST's median stroke width (2 x area / perimeter of pixels over 0.5)


class PreprocessError(ValueError):
    """The image cannot be read or holds no digit; the message says which."""


def mnist_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST images [N,28,28] -> float32 [N,28,28,1] in [0, 1], as the models are trained."""
    return (np.asarray(images, np.float32) / 255.0)[..., None]


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
    path = Path(image)
    if path.is_dir():
        raise PreprocessError("is a directory, not an image")
    try:
        file = path.open("rb")
    except OSError as e:
        raise PreprocessError(
            "no such file" if isinstance(e, FileNotFoundError) else f"cannot open ({e.strerror})"
        ) from None
    with file:
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


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PreprocessError(f"image too large: {width}x{height} pixels (the limit is {MAX_PIXELS:,})")
    if min(width, height) < MIN_SIDE:
        raise PreprocessError(f"image too small: {width}x{height} pixels (at least {MIN_SIDE}x{MIN_SIDE})")


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


def _onto_paper(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite transparent pixels onto paper: the opaque part's median colour if it is the majority (it holds
    the paper), else the colour its ink is not (white behind dark ink, black behind light ink)."""
    if alpha is None:
        return pixels
    opaque = alpha > 0.5
    if not opaque.any():
        raise PreprocessError("no digit found (the image is fully transparent)")
    colour = np.median(pixels[opaque], axis=0)
    paper = colour if opaque.mean() >= 0.5 else np.full_like(colour, float(colour.mean() < 0.5))
    return pixels * alpha[..., None] + paper * (1 - alpha[..., None])


def _minus_paper(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """How far each pixel is from the paper towards the ink's colour [H, W], and the paper's noise level.

    The paper is a quadratic surface per channel, fitted to the pixels near it (start from the border's median,
    refit to the pixels close to the last fit, four times): that takes out a gradient or a vignette. The ink's
    colour is the mean difference of the pixels surely ink; _unshade takes out what a quadratic cannot.
    """
    h, w, c = pixels.shape
    step = max(1, max(h, w) // 64)  # fit on a grid of about 64x64 samples
    grid = pixels[::step, ::step]
    y, x = np.meshgrid(_axis(h)[::step], _axis(w)[::step], indexing="ij")
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1).reshape(-1, 6).astype(np.float64)
    sample = grid.reshape(-1, c).astype(np.float64)  # float64: a flat paper must come out exactly flat
    coef = np.zeros((6, c))
    coef[0] = np.median(np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]]), axis=0)
    for _ in range(4):
        d = _rms(sample - terms @ coef)
        near = d <= _tolerance(d)
        if near.sum() < 24:
            break
        a = terms[near]
        coef = np.linalg.lstsq(a.T @ a, a.T @ sample[near], rcond=None)[0]  # normal equations: 6x6, fast
    y, x = _axis(h)[:, None, None], _axis(w)[None, :, None]
    coef = coef.astype(np.float32)
    residual = pixels - (coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y + coef[5] * y * y)
    distance = _rms(residual)
    ink = _digit(distance > max(_otsu(distance), NOISE_SIGMAS * _sigma(distance)))  # surely ink, not a shadow
    if ink.sum() < 3:
        return distance, _sigma(distance)
    axis = residual[ink].mean(0)  # the ink's colour, seen from the paper
    along = residual @ (axis / max(float(np.linalg.norm(axis)), 1e-6)) / np.sqrt(c)
    return _unshade(along, _stroke_width(ink))


def _unshade(along: np.ndarray, stroke: float) -> tuple[np.ndarray, float]:
    """If the paper is not flat yet (its spread is well over what neighbouring pixels differ by: a shadow, a table,
    the paper's edge), keep only what is narrower than three strokes: the white top-hat (minus the grey opening)
    takes away anything wider, edges and all, and leaves the ink. Also the paper's noise level."""
    k = 2 * round(max(1.5 * stroke, min(along.shape) / 20)) + 1  # px, odd: a tenth of the image at least
    grain = 1.4826 * float(np.median(np.abs(np.diff(along[::2], axis=1)))) / np.sqrt(2)  # sigma, from neighbours
    if _sigma(along) > 2 * grain + 0.01 and k < min(along.shape) // 4:
        smooth = _rank(along, 3, np.mean)  # the opening of noise would sit well under the paper
        along = along - _rank(_rank(smooth, k, np.min), k, np.max)
        along -= np.median(along)  # the paper back at 0
    return along.clip(0, None), _sigma(along)


def _sigma(a: np.ndarray) -> float:
    """The paper's noise: 1.4826 x median |x| is sigma for Gaussian noise; pixels far out (ink) don't count."""
    d = np.abs(a[::2, ::2])  # a quarter of the pixels tell it as well
    return 1.4826 * float(np.median(d[d <= _tolerance(d)]))


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a mask, px: 2 x area / perimeter."""
    mask = np.pad(mask, 1)
    perimeter = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    return 2 * np.count_nonzero(mask) / max(perimeter, 1)


def _axis(n: int) -> np.ndarray:
    """Pixel coordinates scaled to [-1, 1], which keeps the fit well conditioned."""
    return np.linspace(-1, 1, n, dtype=np.float32)


def _rms(a: np.ndarray) -> np.ndarray:
    return np.sqrt((a * a).mean(-1))


def _tolerance(d: np.ndarray) -> float:
    return max(3 * 1.4826 * float(np.median(d)), 0.02)


def _ink(distance: np.ndarray, noise: float) -> np.ndarray:
    """Distance from paper -> ink in [0, 1], 0 away from the digit; PreprocessError if there is no digit."""
    floor = max(NOISE_SIGMAS * noise, 0.5 / 255)  # at least half a grey level of an 8-bit image
    if noise > 0.01:  # visibly noisy (a photo): a 3x3 median removes it and keeps strokes
        top = float(distance.max())
        grey = Image.fromarray(np.rint(distance * (255 / top)).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
        distance = np.asarray(grey, np.float32) * (top / 255)
    above = distance[distance > max(_otsu(distance), floor)]
    full = float(np.percentile(above, 75)) if above.size else 0.0  # the ink's own level
    if full < max(MIN_CONTRAST, 1.5 * floor):
        raise PreprocessError("no digit found (the image is blank or nearly uniform)")
    floor = min(floor, full / 2)
    digit = _digit(distance > floor + 0.35 * (full - floor))
    if digit.sum() < max(3, 2e-4 * digit.size):
        raise PreprocessError("no digit found (only specks differ from the background)")
    full = max(float(np.percentile(distance[digit], 75)), 2 * floor)  # the digit's own level, not the table's
    return ((distance - floor) / (full - floor)).clip(0, 1).astype(np.float32) * _rank(digit, 5)


def _otsu(x: np.ndarray) -> float:
    """The threshold that best splits x's histogram into two classes (Otsu 1979)."""
    hist, edges = np.histogram(x, bins=256, range=(0.0, max(float(x.max()), 1e-6)))
    p = hist / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0, m0 = np.cumsum(p), np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    return float(centres[np.nanargmax(np.nan_to_num(between))])


def _digit(mask: np.ndarray) -> np.ndarray:
    """The mask's blobs that make the digit. When some blobs do not touch the image's border, those that do along
    more than a fifth of its side, or from one side to the other, are not the digit (a table, the paper's edge, a
    shadow). Then specks go: blobs under SPECK x the largest one's area, outside the box of the bigger ones."""
    rows, starts, ends, roots = _blobs(mask)
    if rows.size == 0:
        return mask
    h, w = mask.shape
    n = rows.size

    def per_blob(values: np.ndarray) -> np.ndarray:
        return np.bincount(roots, weights=values, minlength=n)

    area = per_blob(ends - starts)
    top, bottom, left, right = (per_blob(edge) > 0 for edge in (rows == 0, rows == h - 1, starts == 0, ends == w))
    contact = per_blob(np.where((rows == 0) | (rows == h - 1), ends - starts, (starts == 0) + (ends == w)))
    if ((area >= SPECK * area.max()) & (contact == 0)).any():
        area[(contact > min(h, w) / 5) | (top & bottom) | (left & right)] = 0
    big = (area >= SPECK * area.max())[roots] & (area[roots] > 0)
    box = (
        (rows >= rows[big].min()) & (rows <= rows[big].max()) & (ends > starts[big].min()) & (starts < ends[big].max())
    )
    keep = ((per_blob(box) > 0) & (area > 0))[roots]
    out = np.zeros_like(mask)
    for r, a, b in zip(rows[keep].tolist(), starts[keep].tolist(), ends[keep].tolist(), strict=True):
        out[r, a:b] = True
    return out


def _blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected blobs, by union-find over the mask's row runs: each run's row, start, end (exclusive) and blob
    (the index of one of its runs)."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]
    parent = list(range(rows.size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    first = np.searchsorted(rows, np.arange(mask.shape[0] + 1)).tolist()
    s, e = starts.tolist(), ends.tolist()
    for r in range(1, mask.shape[0]):
        i, j = first[r - 1], first[r]  # runs of the row above, of this row
        while i < first[r] and j < first[r + 1]:
            if s[j] <= e[i] and s[i] <= e[j]:  # overlapping or diagonal neighbours
                parent[find(j)] = find(i)
            if e[i] < e[j]:
                i += 1
            else:
                j += 1
    return rows, starts, ends, np.array([find(i) for i in range(rows.size)], dtype=np.intp)


def _rank(a: np.ndarray, k: int, reduce=np.max) -> np.ndarray:
    """``reduce`` (np.max: dilate, np.min: erode, np.mean) over a k x k square around each pixel (k odd)."""
    a = np.pad(a, k // 2, mode="edge")
    return reduce(sliding_window_view(reduce(sliding_window_view(a, k, axis=0), -1), k, axis=1), -1)


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
