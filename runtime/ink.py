"""Ink from paper: steps 2-4 of ``runtime.preprocess``, any float image -> the digit's ink in [0, 1].

    from runtime.ink import _ink, _minus_paper, _onto_paper
    distance, noise = _minus_paper(_onto_paper(pixels, alpha))  # pixels, alpha: a Source's region (runtime.decode)
    ink = _ink(distance, noise)  # float32 [H, W], 0 away from the digit; PreprocessError if there is none

Transparent pixels go onto paper, the paper (a fitted background, then anything wider than a few strokes) is
taken away, whatever colour the ink is, and the ink is what stands out of the paper's noise: an Otsu threshold,
then the blobs that make the digit (8-connected row runs), without specks and what touches the border. These
are private helpers of ``runtime.preprocess``, whose ``to_mnist`` is the way in. ``PreprocessError`` is defined
here because these steps raise it; import it from ``runtime.preprocess``, which re-exports it.

This module imports nothing but the standard library, numpy and Pillow; its constants are in
``runtime/preprocess.json``.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageFilter

from runtime.blobs import _digit
from runtime.constants import PREPROCESS as K

BIN_CENTRES = (np.arange(256) + 0.5) / 256  # of the 256 bins of a histogram over [0, 1)


class PreprocessError(ValueError):
    """The image cannot be read or holds no digit; the message says which."""


NO_DIGIT = dict(enumerate(K["NO_DIGIT"], start=1))  # why there is no digit, by the code runtime/native/ink.c returns
TRANSPARENT, BLANK, NOISE, SPECKS = NO_DIGIT


def _onto_paper(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite transparent pixels onto paper: the opaque part's median colour if it is the majority (it holds
    the paper), else the colour its ink is not (white behind dark ink, black behind light ink)."""
    if alpha is None:
        return pixels
    opaque = alpha > 0.5
    if not opaque.any():
        raise PreprocessError(NO_DIGIT[TRANSPARENT])
    colour = np.median(pixels[opaque], axis=0)
    paper = colour if opaque.mean() >= 0.5 else np.full_like(colour, float(colour.mean() < 0.5))
    return pixels * alpha[..., None] + paper * (1 - alpha[..., None])


def _minus_paper(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """How far each pixel is from the paper towards the ink's colour [H, W], and the paper's noise level.

    The paper is flat (the border's median) unless that leaves much of the image off it; then a quadratic surface
    per channel, fitted to the pixels near it (refit to the pixels close to the last fit, FIT_ROUNDS times), takes
    out a gradient or a vignette, if it puts clearly more of the image on the paper (a tight crop is mostly ink,
    and a surface fitted to it bends into the ink; under SURFACE_MIN_SIDE px it is not even tried). The ink's
    colour is the mean difference of the pixels surely ink; _unshade takes out what a quadratic cannot.
    """
    h, w, c = pixels.shape
    step = max(1, max(h, w) // K["GRID"])  # fit on a grid of GRID to 2 GRID - 1 samples per side
    grid = pixels[::step, ::step]
    sample = grid.reshape(-1, c).astype(np.float64)  # float64: a flat paper must come out exactly flat
    flat = np.zeros((6, c))
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
    flat[0] = [_median(border[:, i]) for i in range(c)]  # np.median(border, axis=0), without its overhead
    grain = max(K["TOLERANCE_SIGMAS"] * _grain(grid), K["TOLERANCE_MIN"])
    coef, paper = flat, _share(sample - flat[0], grain)
    explained = paper  # the share of the samples the best paper explains
    if paper < K["FLAT_SHARE"] and min(h, w) >= K["SURFACE_MIN_SIDE"]:  # not flat enough: fit a surface
        terms = _surface_terms(h, w, step)
        both = np.concatenate([terms, sample], 1)  # one product gives both sides of the normal equations
        near = None
        for _ in range(K["FIT_ROUNDS"]):
            d = _rms(sample - terms @ coef)
            before, near = near, d <= _tolerance(d)
            if near.sum() < 24 or (before is not None and np.array_equal(near, before)):
                break  # too few samples near the paper, or the same ones as last time: the same fit again
            normal = (terms.T * near) @ both  # the normal equations of the samples near: [A^T A | A^T b]
            coef = _solve(normal[:, :6], normal[:, 6:], terms, sample, near)
        explained = max(paper, _share(sample - terms @ coef, grain))
        if explained < paper + K["SURFACE_GAIN"]:
            coef = flat  # a flat paper explains it about as well (a tight crop: a surface would bend into the ink)
    uneven, coef = coef is not flat, coef.astype(np.float32)
    if not uneven:
        residual = pixels - coef[0]
    else:
        y, x = _axis(h)[:, None, None], _axis(w)[None, :, None]
        residual = pixels - (coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y + coef[5] * y * y)
    distance = _rms(residual)
    ink = _digit(distance > max(_otsu(distance), K["NOISE_SIGMAS"] * _spread(distance)))  # surely ink, not a shadow
    if ink.sum() < 3:
        if explained < K["EXPLAINED_MIN"]:  # no paper explains the image, and the flat one hides the ink in its noise
            return _either_way(residual.mean(-1).astype(np.float64), min(h, w) / K["WIDE_STROKE"])
        return distance, _sigma(distance)
    stroke = _stroke_width(ink)
    if not uneven and stroke > min(h, w) / K["WIDE_STROKE"]:
        upper = ink & (distance > _otsu(distance[ink]))  # above Otsu's cut between the stand-out's own two levels
        if _shadowed(ink, upper, stroke):
            uneven, ink = True, upper  # the ink's colour is that of its upper level
    axis = residual[ink].mean(0)  # the ink's colour, seen from the paper
    along = residual @ (axis / max(float(np.linalg.norm(axis)), 1e-6)) / np.sqrt(c)
    return _unshade(along, stroke, uneven)


def _solve(ata: np.ndarray, atb: np.ndarray, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The x that minimises |a[rows] x - b[rows]|, from its normal equations ``ata x = atb`` (6x6: fast);
    ``lstsq``'s least-norm answer when those samples cannot tell the terms apart (all on one row, say)."""
    try:
        return np.linalg.solve(ata, atb)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a[rows], b[rows], rcond=None)[0]


@functools.lru_cache(maxsize=4)  # a folder's images often share a size: the fit's terms are made once
def _surface_terms(h: int, w: int, step: int) -> np.ndarray:
    """The quadratic surface's terms (1, x, y, x², xy, y²) at the fit's grid samples [N, 6], float64."""
    y, x = np.meshgrid(_axis(h)[::step], _axis(w)[::step], indexing="ij")
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y]).reshape(6, -1).astype(np.float64).T
    terms.flags.writeable = False  # shared by every call; stored [6, N], which the normal equations read faster
    return terms


def _shadowed(surely: np.ndarray, upper: np.ndarray, stroke: float) -> bool:
    """Whether what stands out of a flat paper (``surely``), wider than strokes can be (``stroke``), is mostly a
    shadow with the ink in it: under SHADOW_SHARE of it at its ``upper`` level, or that level in strokes under half
    as wide. A quadratic surface cannot follow a shadow's edge, so the paper looked flat; a tight crop is wide too,
    but mostly full ink, in strokes as wide."""
    return np.count_nonzero(upper) < K["SHADOW_SHARE"] * np.count_nonzero(surely) or _stroke_width(upper) < stroke / 2


def _either_way(grey: np.ndarray, stroke: float) -> tuple[np.ndarray, float]:
    """``_unshade`` of the pixels darker than the paper (``grey``: the residual's channel mean), or of those lighter
    if that leaves clearly stronger ink (LIGHT_INK x its 99.5th percentile): for an image no paper explains, where
    nothing stood out of the flat one (a shadow's edge, the table), so that the ink's colour is not known."""
    dark, light = (_unshade(sign * grey, stroke, True) for sign in (-1.0, 1.0))
    level = [float(np.percentile(t[0], 99.5)) for t in (dark, light)]
    return light if level[1] > K["LIGHT_INK"] * level[0] else dark  # the paper between dark strokes is light too


def _share(off: np.ndarray, tolerance: float) -> float:
    """The share of the samples within ``tolerance`` of a paper, from their differences ``off`` to it."""
    return float(np.mean(_rms(off) <= tolerance))


def _unshade(along: np.ndarray, stroke: float, uneven: bool) -> tuple[np.ndarray, float]:
    """If the paper is not flat yet (its spread is well over what neighbouring pixels differ by: a shadow, a table,
    the paper's edge), keep only what is narrower than three strokes: the white top-hat (minus the grey opening)
    takes away anything wider, edges and all, and leaves the ink. Also the paper's noise level."""
    side = min(along.shape)
    wide = uneven and stroke > side / K["WIDE_STROKE"]  # "ink" this wide on uneven paper: a shadow, a table
    stroke = min(stroke, side / K["WIDE_STROKE"])  # ... which must not make the window wide
    k = 2 * round(max(K["TOPHAT_STROKES"] * stroke, side / K["TOPHAT_FRACTION"])) + 1  # px, odd
    grain = _grain(along) if uneven and k < min(along.shape) // 4 else None
    if grain is not None and (wide or _spread(along, wide=True) > 2 * grain + K["NOISY"]):
        along = along - _rank(_rank(along, k, np.min), k, np.max)  # an opening of a 3x3 mean instead leaves a line
        # along a sharp edge (the table's), and a top-hat of that mean thins a fine pen's strokes away
        along -= _median(along)  # the paper back at 0
        grain = None
    return along.clip(0, None), _sigma(along, grain)


def _sigma(a: np.ndarray, grain: float | None = None) -> float:
    """The paper's noise: the smaller of its spread and what neighbouring pixels differ by (``grain``, if known
    already); the second holds when the ink and its edges are most of the image."""
    return min(_spread(a), _grain(a) if grain is None else grain)


def _spread(a: np.ndarray, wide: bool = False) -> float:
    """The paper's spread: MAD_SIGMA x median |x| is sigma for Gaussian noise; pixels far out (ink) don't count,
    nor, unless ``wide`` (which keeps a shadow in), those past Otsu's cut (an image mostly ink)."""
    d = np.abs(a[::2, ::2])  # a quarter of the pixels tell it as well
    return K["MAD_SIGMA"] * _median(d[d <= (_tolerance(d) if wide else min(_tolerance(d), _otsu(d)))])


def _grain(a: np.ndarray) -> float:
    """The noise told by neighbouring pixels (sigma of Gaussian noise), the smaller of what first and second
    differences along every other row say: an image mostly ink does not fool it, and second differences are not
    fooled by the smooth ramps of a large digit's anti-aliased edge either."""
    rows = a[::2]
    found = []
    step = rows
    for scale in (np.sqrt(2), np.sqrt(6)):  # the spread of a first, a second difference (of 2, 3 noisy pixels)
        step = step[:, 1:] - step[:, :-1]  # np.diff along the rows, without its overhead
        found.append(K["MAD_SIGMA"] * _median(_rms(step) if step.ndim == 3 else np.abs(step)) / scale)
    return min(found)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a mask, px: 2 x area / perimeter."""
    mask = _pad(mask, 1)
    perimeter = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    return 2 * np.count_nonzero(mask) / max(perimeter, 1)


def _pad(a: np.ndarray, r: int) -> np.ndarray:
    """``np.pad(a, r)`` of a 2-D array (zeros around it), without its overhead."""
    out = np.zeros((a.shape[0] + 2 * r, a.shape[1] + 2 * r), a.dtype)
    out[r : r + a.shape[0], r : r + a.shape[1]] = a
    return out


def _axis(n: int) -> np.ndarray:
    """Pixel coordinates scaled to [-1, 1], which keeps the fit well conditioned."""
    return np.linspace(-1, 1, n, dtype=np.float32)


def _rms(a: np.ndarray) -> np.ndarray:
    """The root mean square over the last axis (the channels): the same float arithmetic as ``(a * a).mean(-1)``,
    which numpy reduces about ten times slower over an axis this short."""
    squares = a[..., 0] * a[..., 0]
    for i in range(1, a.shape[-1]):
        squares += a[..., i] * a[..., i]
    return np.sqrt(squares / a.shape[-1])


def _median(a: np.ndarray) -> float:
    """``np.median`` of all of ``a``'s values, without its overhead (a third of its time on arrays this small)."""
    a = a.ravel()
    if a.size == 0:
        return float("nan")
    k = a.size // 2
    a = a.copy()  # partitioned in place
    if a.size % 2:
        a.partition(k)
        return float(a[k])
    a.partition((k - 1, k))
    return float((a[k - 1] + a[k]) / 2)


def _upper_quartile(a: np.ndarray) -> float:
    """``np.percentile(a, 75)`` (linear, with numpy's two-sided lerp) of a non-empty array, without its overhead."""
    a = a.ravel()
    index = 0.75 * (a.size - 1)
    below = int(index)
    t = index - below
    low, high = np.partition(a, (below, min(below + 1, a.size - 1)))[[below, min(below + 1, a.size - 1)]]
    diff = high - low
    return float(high - diff * (1 - t) if t >= 0.5 else low + diff * t)


def _tolerance(d: np.ndarray) -> float:
    return max(K["TOLERANCE_SIGMAS"] * K["MAD_SIGMA"] * _median(d), K["TOLERANCE_MIN"])


def _ink(distance: np.ndarray, noise: float) -> np.ndarray:
    """Distance from paper -> ink in [0, 1], 0 away from the digit; PreprocessError if there is no digit."""
    floor = max(K["NOISE_SIGMAS"] * noise, 0.5 / 255)  # at least half a grey level of an 8-bit image
    if noise > K["NOISY"]:  # visibly noisy (a photo): a 3x3 median removes it and keeps strokes
        top = float(distance.max())
        grey = Image.fromarray(np.rint(distance * (255 / top)).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
        distance = np.asarray(grey, np.float32) * (top / 255)
    above = distance[distance > max(_otsu(distance), floor)]
    full = _upper_quartile(above) if above.size else 0.0  # the ink's own level
    if full < max(K["MIN_CONTRAST"], 1.5 * floor):
        if float(distance.max()) < K["MIN_CONTRAST"]:
            raise PreprocessError(NO_DIGIT[BLANK])
        raise PreprocessError(NO_DIGIT[NOISE])
    floor = min(floor, full / 2)
    digit = _digit(distance > floor + K["INK_CUT"] * (full - floor))
    if digit.sum() < max(3, 2e-4 * digit.size):
        raise PreprocessError(NO_DIGIT[SPECKS])
    full = max(_upper_quartile(distance[digit]), 2 * floor)  # the digit's own level, not the table's
    return ((distance - floor) / (full - floor)).clip(0, 1).astype(np.float32) * _rank(digit, K["MASK_GROW"])


def _otsu(x: np.ndarray) -> float:
    """The threshold that best splits x's histogram into two classes (Otsu 1979)."""
    top = max(float(x.max()), 1e-6)
    hist = np.bincount(np.minimum((x.ravel() * (256 / top)).astype(np.intp), 255), minlength=256)
    p = hist / x.size
    centres = BIN_CENTRES * top  # (i + 0.5) * (top / 256), exactly: 256 is a power of two
    w0, m0 = np.cumsum(p), np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    return float(centres[np.argmax(np.fmax(between, 0))])  # 0/0 (an empty class) counts as 0


def _rank(a: np.ndarray, k: int, reduce=np.max) -> np.ndarray:
    """``reduce`` (np.max: dilate, np.min: erode) over a k x k square around each pixel (k odd), edges replicated:
    the columns' windows first, then the rows', each a running extreme over k shifted views."""
    r = k // 2
    for axis in (0, 1):
        n = a.shape[axis]
        padded = a.take(np.arange(-r, n + r).clip(0, n - 1), axis)  # edges replicated
        views = [padded[i : i + n] if axis == 0 else padded[:, i : i + n] for i in range(k)]
        out = views[0].copy()
        for view in views[1:]:
            (np.maximum if reduce is np.max else np.minimum)(out, view, out=out)
        a = out
    return a
