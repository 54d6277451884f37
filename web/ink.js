// Ink from paper: runtime/ink.py in JavaScript, steps 2-4 of the page's preprocessing.
//
//     import { ontoPaper, minusPaper, ink } from "./ink.js";
//     const { distance, noise } = minusPaper(ontoPaper(image, alpha));  // image: {width, height, channels, data}
//     const digit = ink(distance, noise, width, height);                 // Float32Array plane; PreprocessError if none
//
// Function for function the algorithm of runtime/ink.py (its docstrings say why each step is there):
// transparent pixels onto paper, a quadratic paper fitted and taken away (then a white top-hat if the
// paper is still not flat), Otsu over the noise floor, a 3x3 median when noisy, and the blobs that
// make the digit. The same constants, the same order, float32 where numpy computes in float32.

import { mapTo, median, otsu, percentile, rank, rint, strokeWidth } from "./numeric.js";
import { median3 } from "./resample.js";
import { blobMask } from "./blobs.js";

export const MIN_CONTRAST = 0.08;
export const NOISE_SIGMAS = 4.0;
const f32 = Math.fround;

export class PreprocessError extends Error {
  constructor(message) {
    super(message);
    this.name = "PreprocessError";
  }
}

function tolerance(d) {
  return Math.max(3 * 1.4826 * median(d), 0.02);
}

// The paper's noise: 1.4826 x median |x| of every other pixel of every other row, far-out pixels left out.
export function sigma(plane, width, height) {
  const d = [];
  for (let y = 0; y < height; y += 2) for (let x = 0; x < width; x += 2) d.push(Math.abs(plane[y * width + x]));
  const tol = tolerance(d);
  return 1.4826 * median(d.filter((v) => v <= tol));
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

// The paper: a quadratic surface per channel fitted to the pixels near it, on a grid of about 64x64 samples
// (start from the border's median, refit to the samples close to the last fit, four times). Returns the
// coefficients [6][channels] of 1, x, y, x*x, x*y, y*y over coordinates scaled to [-1, 1].
function fitPaper({ width: w, height: h, channels: c, data }, ax, ay) {
  const step = Math.max(1, Math.floor(Math.max(h, w) / 64));
  const [rows, cols] = [Math.ceil(h / step), Math.ceil(w / step)];
  const n = rows * cols;
  const terms = new Float64Array(n * 6);
  const sample = new Float64Array(n * c);
  for (let gy = 0, i = 0; gy < rows; gy++) {
    for (let gx = 0; gx < cols; gx++, i++) {
      const [tx, ty] = [ax[gx * step], ay[gy * step]];
      terms.set([1, tx, ty, f32(tx * tx), f32(tx * ty), f32(ty * ty)], i * 6);
      for (let ch = 0; ch < c; ch++) sample[i * c + ch] = data[(gy * step * w + gx * step) * c + ch];
    }
  }
  // The grid's first and last rows, then its first and last columns (corners twice, as np.concatenate has them).
  const border = Array.from({ length: c }, () => []);
  const add = (gy, gx) => {
    for (let ch = 0; ch < c; ch++) border[ch].push(sample[(gy * cols + gx) * c + ch]);
  };
  for (const gy of [0, rows - 1]) for (let gx = 0; gx < cols; gx++) add(gy, gx);
  for (const gx of [0, cols - 1]) for (let gy = 0; gy < rows; gy++) add(gy, gx);
  let coef = Array.from({ length: 6 }, (_, t) => border.map((values) => (t ? 0 : f32(median(values, true)))));
  const d = new Float64Array(n);
  for (let round = 0; round < 4; round++) {
    const flat = Float64Array.from(coef.flat());
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let ch = 0; ch < c; ch++) {
        let fit = 0;
        for (let t = 0; t < 6; t++) fit += terms[i * 6 + t] * flat[t * c + ch];
        s += (sample[i * c + ch] - fit) ** 2;
      }
      d[i] = Math.sqrt(s / c);
    }
    const tol = tolerance(d);
    const ata = Array.from({ length: 6 }, () => new Array(6).fill(0));
    const atb = Array.from({ length: 6 }, () => new Array(c).fill(0));
    let near = 0;
    for (let i = 0; i < n; i++) {
      if (!(d[i] <= tol)) continue;
      near++;
      for (let r = 0; r < 6; r++) {
        for (let q = 0; q < 6; q++) ata[r][q] += terms[i * 6 + r] * terms[i * 6 + q];
        for (let ch = 0; ch < c; ch++) atb[r][ch] += terms[i * 6 + r] * sample[i * c + ch];
      }
    }
    if (near < 24) break;
    coef = solve(ata, atb, c);
  }
  return coef;
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
  const { residual, squares } = minusFit(image, fitPaper(image, ax, ay), ax, ay);
  const distance = mapTo(Float32Array, squares, (s) => Math.sqrt(f32(s / c)));
  const surely = blobMask(threshold(distance, Math.max(otsu(distance), NOISE_SIGMAS * sigma(distance, w, h))), w, h);
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
  return unshade(along, strokeWidth(surely, w, h), w, h);
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

// If the paper is not flat yet, keep only what is narrower than three strokes (a white top-hat).
function unshade(along, stroke, w, h) {
  const k = 2 * rint(Math.max(1.5 * stroke, Math.min(h, w) / 20)) + 1;
  const steps = [];
  for (let y = 0; y < h; y += 2)
    for (let x = 1; x < w; x++) steps.push(Math.abs(along[y * w + x] - along[y * w + x - 1]));
  const grain = (1.4826 * median(steps)) / Math.sqrt(2);
  if (sigma(along, w, h) > 2 * grain + 0.01 && k < Math.floor(Math.min(h, w) / 4)) {
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
  let floor = Math.max(NOISE_SIGMAS * noise, 0.5 / 255);
  if (noise > 0.01) {
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
  if (full < Math.max(MIN_CONTRAST, 1.5 * floor)) {
    throw new PreprocessError("no digit found (the image is blank or nearly uniform)");
  }
  floor = Math.min(floor, full / 2);
  const digit = blobMask(threshold(distance, floor + 0.35 * (full - floor)), w, h);
  const area = digit.reduce((s, v) => s + v, 0);
  if (area < Math.max(3, 2e-4 * digit.length)) {
    throw new PreprocessError("no digit found (only specks differ from the background)");
  }
  const level = Math.max(percentile(where(distance, digit), 75), 2 * floor);
  const near = rank(digit, w, h, 5, "max");
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
