// Ink from paper: runtime/ink.py in JavaScript, steps 2-4 of the page's preprocessing.
//
//     import { ontoPaper, minusPaper, ink } from "./ink.js";
//     const { distance, noise } = minusPaper(ontoPaper(image, alpha));  // image: {width, height, channels, data}
//     const digit = ink(distance, noise, width, height);                 // Float32Array plane; PreprocessError if none
//
// Function for function the algorithm of runtime/ink.py (its docstrings say why each step is there):
// transparent pixels onto paper, a flat or quadratic paper fitted and taken away (then a white top-hat
// if the paper is uneven and still not flat), Otsu over the noise floor, a 3x3 median when noisy, and
// the blobs that make the digit. The same constants (runtime/preprocess.json, through constants.js),
// the same order, float32 where numpy computes in float32.

import { mapTo, median, otsu, percentile, rank, rint, strokeWidth } from "./numeric.js";
import { median3 } from "./resample.js";
import { blobMask } from "./blobs.js";
import { K } from "./constants.js";

const f32 = Math.fround;

export class PreprocessError extends Error {
  constructor(message) {
    super(message);
    this.name = "PreprocessError";
  }
}

function tolerance(d) {
  return Math.max(K.TOLERANCE_SIGMAS * K.MAD_SIGMA * median(d), K.TOLERANCE_MIN);
}

// Every other pixel of every other row of a plane, as a[::2, ::2].
function quarter(plane, width, height) {
  const d = [];
  for (let y = 0; y < height; y += 2) for (let x = 0; x < width; x += 2) d.push(Math.abs(plane[y * width + x]));
  return d;
}

// The paper's spread: MAD_SIGMA x median |x| over the pixels within the tolerance (and, unless `wide`,
// below Otsu's cut) of every other pixel of every other row.
export function spread(plane, width, height, wide = false) {
  const single = plane instanceof Float32Array;
  const d = quarter(plane, width, height);
  const cut = wide ? tolerance(d) : Math.min(tolerance(d), otsu(single ? Float32Array.from(d) : Float64Array.from(d)));
  const limit = single ? f32(cut) : cut; // a float32 array compares against the cut rounded to float32
  return K.MAD_SIGMA * median(d.filter((v) => v <= limit));
}

// The noise told by neighbouring pixels: MAD_SIGMA x median |difference| / its spread, for first and second
// differences along every other row, the smaller; for `channels` > 1 interleaved channels, each difference is
// the rms over them. Float32 arithmetic for float32 data, as numpy's.
function grain(data, width, height, channels = 1) {
  const single = !(data instanceof Float64Array);
  const r = single ? f32 : (v) => v;
  const found = [];
  for (const [order, scale] of [
    [1, Math.sqrt(2)],
    [2, Math.sqrt(6)],
  ]) {
    const steps = [];
    const row = new Float64Array(width * channels);
    for (let y = 0; y < height; y += 2) {
      let n = width;
      for (let i = 0; i < width * channels; i++) row[i] = data[y * width * channels + i];
      for (let k = 0; k < order; k++, n--) {
        for (let i = 0; i < (n - 1) * channels; i++) row[i] = r(row[i + channels] - row[i]);
      }
      for (let x = 0; x < n; x++) {
        if (channels === 1) {
          steps.push(Math.abs(row[x]));
          continue;
        }
        let s = 0;
        for (let c = 0; c < channels; c++) s = f32(s + f32(row[x * channels + c] * row[x * channels + c]));
        steps.push(f32(Math.sqrt(f32(s / channels))));
      }
    }
    found.push((K.MAD_SIGMA * median(steps)) / scale);
  }
  return Math.min(...found);
}

// The paper's noise: the smaller of its spread and what neighbouring pixels differ by.
export function sigma(plane, width, height) {
  return Math.min(spread(plane, width, height), grain(plane, width, height));
}

// Composite transparent pixels onto paper: the opaque part's median colour if it is the majority, else
// the colour its ink is not.
export function ontoPaper(image, alpha) {
  if (!alpha) return image;
  const { width, height, channels, data } = image;
  const n = width * height;
  const opaque = [];
  for (let i = 0; i < n; i++) if (alpha[i] > 0.5) opaque.push(i);
  if (!opaque.length) throw new PreprocessError("no digit found (the image is fully transparent)");
  const colour = Array.from({ length: channels }, (_, c) =>
    f32(
      median(
        opaque.map((i) => data[i * channels + c]),
        true,
      ),
    ),
  );
  const mean = f32(colour.reduce((s, v) => f32(s + v), 0) / channels);
  const paper = opaque.length / n >= 0.5 ? colour : colour.map(() => (mean < 0.5 ? 1 : 0));
  const out = new Float32Array(data.length);
  for (let i = 0; i < n; i++) {
    const a = alpha[i];
    for (let c = 0; c < channels; c++)
      out[i * channels + c] = f32(data[i * channels + c] * a) + f32(paper[c] * f32(1 - a));
  }
  return { width, height, channels, data: out };
}

// Gaussian elimination with partial pivoting of the 6x6 normal equations, one right-hand side per channel.
function solve(ata, atb, channels) {
  const n = 6;
  const a = ata.map((row, i) => [...row, ...atb[i]]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    if (Math.abs(a[col][col]) < 1e-300) continue;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r][col] / a[col][col];
      for (let j = col; j < n + channels; j++) a[r][j] -= f * a[col][j];
    }
  }
  return a.map((row, i) => row.slice(n).map((v) => (Math.abs(row[i]) < 1e-300 ? 0 : v / row[i])));
}

const axis = (n) =>
  Float32Array.from({ length: n }, (_, i) => (n === 1 ? -1 : i === n - 1 ? 1 : -1 + i * (2 / (n - 1))));

// The share of the samples within `tol` of the paper `coef` [6][channels] describes.
function share(terms, sample, n, c, coef, tol) {
  const flat = Float64Array.from(coef.flat());
  let near = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) {
      let fit = 0;
      for (let t = 0; t < 6; t++) fit += terms[i * 6 + t] * flat[t * c + ch];
      s += (sample[i * c + ch] - fit) ** 2;
    }
    if (Math.sqrt(s / c) <= tol) near++;
  }
  return near / n;
}

// The paper: flat (the border's median) or a quadratic surface per channel fitted to the pixels near it, on a
// grid of about GRID x GRID samples (refit to the samples close to the last fit, FIT_ROUNDS times), if the flat
// paper leaves much of the image off it and the surface puts clearly more on it. Returns the coefficients
// [6][channels] of 1, x, y, x*x, x*y, y*y over coordinates scaled to [-1, 1], and whether they are a surface.
function fitPaper({ width: w, height: h, channels: c, data }, ax, ay) {
  const step = Math.max(1, Math.floor(Math.max(h, w) / K.GRID));
  const [rows, cols] = [Math.ceil(h / step), Math.ceil(w / step)];
  const n = rows * cols;
  const terms = new Float64Array(n * 6);
  const sample = new Float64Array(n * c);
  const grid = new Float32Array(n * c);
  for (let gy = 0, i = 0; gy < rows; gy++) {
    for (let gx = 0; gx < cols; gx++, i++) {
      const [tx, ty] = [ax[gx * step], ay[gy * step]];
      terms.set([1, tx, ty, f32(tx * tx), f32(tx * ty), f32(ty * ty)], i * 6);
      for (let ch = 0; ch < c; ch++) sample[i * c + ch] = grid[i * c + ch] = data[(gy * step * w + gx * step) * c + ch];
    }
  }
  // The grid's first and last rows, then its first and last columns (corners twice, as np.concatenate has them).
  const border = Array.from({ length: c }, () => []);
  const add = (gy, gx) => {
    for (let ch = 0; ch < c; ch++) border[ch].push(sample[(gy * cols + gx) * c + ch]);
  };
  for (const gy of [0, rows - 1]) for (let gx = 0; gx < cols; gx++) add(gy, gx);
  for (const gx of [0, cols - 1]) for (let gy = 0; gy < rows; gy++) add(gy, gx);
  const flat = Array.from({ length: 6 }, (_, t) => border.map((values) => (t ? 0 : f32(median(values, true)))));
  const tol = Math.max(K.TOLERANCE_SIGMAS * grain(grid, cols, rows, c), K.TOLERANCE_MIN);
  const paper = share(terms, sample, n, c, flat, tol);
  if (paper >= K.FLAT_SHARE) return { coef: flat, uneven: false };
  let coef = flat;
  const d = new Float64Array(n);
  for (let round = 0; round < K.FIT_ROUNDS; round++) {
    const flatCoef = Float64Array.from(coef.flat());
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let ch = 0; ch < c; ch++) {
        let fit = 0;
        for (let t = 0; t < 6; t++) fit += terms[i * 6 + t] * flatCoef[t * c + ch];
        s += (sample[i * c + ch] - fit) ** 2;
      }
      d[i] = Math.sqrt(s / c);
    }
    const cut = tolerance(d);
    const ata = Array.from({ length: 6 }, () => new Array(6).fill(0));
    const atb = Array.from({ length: 6 }, () => new Array(c).fill(0));
    let near = 0;
    for (let i = 0; i < n; i++) {
      if (!(d[i] <= cut)) continue;
      near++;
      for (let r = 0; r < 6; r++) {
        for (let q = 0; q < 6; q++) ata[r][q] += terms[i * 6 + r] * terms[i * 6 + q];
        for (let ch = 0; ch < c; ch++) atb[r][ch] += terms[i * 6 + r] * sample[i * c + ch];
      }
    }
    if (near < 24) break;
    coef = solve(ata, atb, c);
  }
  if (share(terms, sample, n, c, coef, tol) < paper + K.SURFACE_GAIN) return { coef: flat, uneven: false };
  return { coef, uneven: true };
}

// The image minus the fitted paper (float32, as numpy computes it) and the sum of its squares per pixel.
function minusFit({ width: w, height: h, channels: c, data }, coef, ax, ay) {
  const residual = new Float32Array(w * h * c);
  const squares = new Float32Array(w * h);
  for (let ch = 0; ch < c; ch++) {
    const [k0, k1, k2, k3, k4, k5] = coef.map((row) => f32(row[ch]));
    for (let y = 0; y < h; y++) {
      const ty = ay[y];
      const yTerm = f32(k2 * ty);
      const yyTerm = f32(f32(k5 * ty) * ty);
      for (let x = 0; x < w; x++) {
        const tx = ax[x];
        let fit = f32(f32(k0 + f32(k1 * tx)) + yTerm);
        fit = f32(fit + f32(f32(k3 * tx) * tx));
        fit = f32(fit + f32(f32(k4 * tx) * ty));
        fit = f32(fit + yyTerm);
        const i = y * w + x;
        const r = f32(data[i * c + ch] - fit);
        residual[i * c + ch] = r;
        squares[i] += f32(r * r);
      }
    }
  }
  return { residual, squares };
}

// How far each pixel is from the paper towards the ink's colour (a plane), and the noise level.
export function minusPaper(image) {
  const { width: w, height: h, channels: c } = image;
  const [ax, ay] = [axis(w), axis(h)];
  const { coef, uneven } = fitPaper(image, ax, ay);
  const { residual, squares } = minusFit(image, coef, ax, ay);
  const distance = mapTo(Float32Array, squares, (s) => Math.sqrt(f32(s / c)));
  const surely = blobMask(threshold(distance, Math.max(otsu(distance), K.NOISE_SIGMAS * spread(distance, w, h))), w, h);
  let count = 0;
  const inkColour = new Float64Array(c);
  for (let i = 0; i < w * h; i++) {
    if (!surely[i]) continue;
    count++;
    for (let ch = 0; ch < c; ch++) inkColour[ch] += residual[i * c + ch];
  }
  if (count < 3) return { distance, noise: sigma(distance, w, h) };
  const mean = Array.from(inkColour, (v) => f32(v / count));
  const norm = Math.max(f32(Math.sqrt(mean.reduce((s, v) => s + v * v, 0))), 1e-6);
  const unit = mean.map((v) => f32(v / norm));
  const along = new Float64Array(w * h);
  for (let i = 0; i < w * h; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s = f32(s + f32(residual[i * c + ch] * unit[ch]));
    along[i] = s / Math.sqrt(c);
  }
  return unshade(along, strokeWidth(surely, w, h), uneven, w, h);
}

// The values where the mask is set, as values[mask] in numpy.
function where(values, mask) {
  const out = [];
  for (let i = 0; i < values.length; i++) if (mask[i]) out.push(values[i]);
  return out;
}

// values > t for a float32 plane compare against t rounded to float32, as numpy does with a Python float.
function threshold(plane, t) {
  const limit = plane instanceof Float32Array ? f32(t) : t;
  return mapTo(Uint8Array, plane, (v) => (v > limit ? 1 : 0));
}

// If the paper is uneven and still not flat (or "ink" is wider than strokes can be: a shadow, a table), keep only
// what is narrower than a few strokes (a white top-hat).
function unshade(along, stroke, uneven, w, h) {
  const side = Math.min(h, w);
  const wide = uneven && stroke > side / K.WIDE_STROKE;
  stroke = Math.min(stroke, side / K.WIDE_STROKE);
  const k = 2 * rint(Math.max(K.TOPHAT_STROKES * stroke, side / K.TOPHAT_FRACTION)) + 1;
  const flatter = () => spread(along, w, h, true) > 2 * grain(along, w, h) + K.NOISY;
  if (uneven && (wide || flatter()) && k < Math.floor(side / 4)) {
    const opened = rank(rank(rank(along, w, h, 3, "mean"), w, h, k, "min"), w, h, k, "max");
    for (let i = 0; i < along.length; i++) along[i] -= opened[i];
    const middle = median(along);
    for (let i = 0; i < along.length; i++) along[i] -= middle;
  }
  const noise = sigma(along, w, h);
  return { distance: along.map((v) => Math.max(v, 0)), noise };
}

// Distance from paper -> ink in [0, 1] (Float32Array plane), 0 away from the digit.
export function ink(distance, noise, w, h) {
  let floor = Math.max(K.NOISE_SIGMAS * noise, 0.5 / 255);
  if (noise > K.NOISY) {
    let top = 0;
    for (const v of distance) top = Math.max(top, v);
    const grey = median3(
      mapTo(Uint8Array, distance, (v) => rint(v * (255 / top))),
      w,
      h,
    );
    const back = f32(top / 255);
    distance = mapTo(Float32Array, grey, (v) => f32(v * back));
  }
  const cut = threshold(distance, Math.max(otsu(distance), floor));
  const above = where(distance, cut);
  const full = above.length ? percentile(above, 75) : 0;
  if (full < Math.max(K.MIN_CONTRAST, 1.5 * floor)) {
    let top = 0;
    for (let i = 0; i < distance.length; i++) top = Math.max(top, distance[i]);
    if (top < K.MIN_CONTRAST) throw new PreprocessError("no digit found (the image is blank or nearly uniform)");
    throw new PreprocessError("no digit found (nothing stands out of the background's noise as ink)");
  }
  floor = Math.min(floor, full / 2);
  const digit = blobMask(threshold(distance, floor + K.INK_CUT * (full - floor)), w, h);
  const area = digit.reduce((s, v) => s + v, 0);
  if (area < Math.max(3, 2e-4 * digit.length)) {
    throw new PreprocessError("no digit found (only specks differ from the background)");
  }
  const level = Math.max(percentile(where(distance, digit), 75), 2 * floor);
  const near = rank(digit, w, h, K.MASK_GROW, "max");
  const out = new Float32Array(w * h);
  for (let i = 0; i < out.length; i++) {
    const x =
      distance instanceof Float32Array
        ? f32(f32(distance[i] - f32(floor)) / f32(level - floor))
        : (distance[i] - floor) / (level - floor);
    out[i] = near[i] ? Math.min(1, Math.max(0, x)) : 0;
  }
  return out;
}
