"""Ink from paper: steps 2-4 of ``runtime.preprocess``, any float image -> the digit's ink in [0, 1].

    from runtime.ink import _ink, _minus_paper, _onto_paper
    distance, noise = _minus_paper(_onto_paper(pixels, alpha))  # pixels, alpha: what runtime.preprocess.load gives
    ink = _ink(distance, noise)  # float32 [H, W], 0 away from the digit; PreprocessError if there is none

Transparent pixels go onto paper, the paper (a fitted background, then anything wider than a few strokes) is
taken away, whatever colour the ink is, and the ink is what stands out of the paper's noise: an Otsu threshold,
then the blobs that make the digit (8-connected row runs), without specks and what touches the border. These
are private helpers of ``runtime.preprocess``, whose ``to_mnist`` is the way in. ``PreprocessError`` is defined
here because these steps raise it; import it from ``runtime.preprocess``, which re-exports it.

This module imports nothing but numpy and Pillow.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageFilter

MIN_CONTRAST = 0.08  # ink must differ from paper by this fraction of full scale ...
NOISE_SIGMAS = 4.0  # ... and by this many standard deviations of the paper's noise
SPECK = 0.05  # ink blobs under this fraction of the largest are specks, unless inside the digit's box
SURFACE_GAIN = 0.1  # a paper surface, not flat, only if it puts this much more of the image on the paper


class PreprocessError(ValueError):
    """The image cannot be read or holds no digit; the message says which."""


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
    coef = flat = np.zeros((6, c))
    coef[0] = np.median(np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]]), axis=0)
    for _ in range(4):
        d = _rms(sample - terms @ coef)
        near = d <= min(_tolerance(d), _otsu(d))  # Otsu's cut keeps it off the ink when the ink is most of it
        if near.sum() < 24:
            break
        a = terms[near]
        coef = np.linalg.lstsq(a.T @ a, a.T @ sample[near], rcond=None)[0]  # normal equations: 6x6, fast
    grain = max(3 * 1.4826 * float(np.median(_rms(np.diff(grid, axis=1)))) / np.sqrt(2), 0.02)
    if _share(sample, terms, coef, grain) < _share(sample, terms, flat, grain) + SURFACE_GAIN:
        coef = flat  # a flat paper explains the image about as well (a tight crop: a surface would bend into the ink)
    y, x = _axis(h)[:, None, None], _axis(w)[None, :, None]
    coef = coef.astype(np.float32)
    residual = pixels - (coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y + coef[5] * y * y)
    distance = _rms(residual)
    ink = _digit(distance > max(_otsu(distance), NOISE_SIGMAS * _spread(distance)))  # surely ink, not a shadow
    if ink.sum() < 3:
        return distance, _sigma(distance)
    axis = residual[ink].mean(0)  # the ink's colour, seen from the paper
    along = residual @ (axis / max(float(np.linalg.norm(axis)), 1e-6)) / np.sqrt(c)
    return _unshade(along, _stroke_width(ink))


def _share(sample: np.ndarray, terms: np.ndarray, coef: np.ndarray, tolerance: float) -> float:
    """The share of the samples within ``tolerance`` of the paper ``coef`` describes."""
    return float(np.mean(_rms(sample - terms @ coef) <= tolerance))


def _unshade(along: np.ndarray, stroke: float) -> tuple[np.ndarray, float]:
    """If the paper is not flat yet (its spread is well over what neighbouring pixels differ by: a shadow, a table,
    the paper's edge), keep only what is narrower than three strokes: the white top-hat (minus the grey opening)
    takes away anything wider, edges and all, and leaves the ink. Also the paper's noise level."""
    k = 2 * round(max(1.5 * stroke, min(along.shape) / 20)) + 1  # px, odd: a tenth of the image at least
    if _spread(along) > 2 * _grain(along) + 0.01 and k < min(along.shape) // 4:
        smooth = _rank(along, 3, np.mean)  # the opening of noise would sit well under the paper
        along = along - _rank(_rank(smooth, k, np.min), k, np.max)
        along -= np.median(along)  # the paper back at 0
    return along.clip(0, None), _sigma(along)


def _sigma(a: np.ndarray) -> float:
    """The paper's noise: the smaller of its spread and what neighbouring pixels differ by."""
    return min(_spread(a), _grain(a))  # the second holds when the ink and its edges are most of the image


def _spread(a: np.ndarray) -> float:
    """The paper's spread: 1.4826 x median |x| is sigma for Gaussian noise; pixels far out (ink) don't count."""
    d = np.abs(a[::2, ::2])  # a quarter of the pixels tell it as well
    return 1.4826 * float(np.median(d[d <= min(_tolerance(d), _otsu(d))]))


def _grain(a: np.ndarray) -> float:
    """The noise told by neighbouring pixels (sigma of Gaussian noise): an image mostly ink does not fool it."""
    return 1.4826 * float(np.median(np.abs(np.diff(a[::2], axis=1)))) / np.sqrt(2)


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
        if float(distance.max()) < MIN_CONTRAST:
            raise PreprocessError("no digit found (the image is blank or nearly uniform)")
        raise PreprocessError("no digit found (nothing stands out of the background's noise as ink)")
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
