// The paper: its fit and its noise, runtime/ink.py's _minus_paper helpers and noise levels in JavaScript.
//
//     import { axis, fitPaper, minusFit, sigma } from "./paper.js";
//     const { coef, uneven, explained } = fitPaper(image, axis(image.width), axis(image.height));  // flat, or a surface
//     const { residual, squares } = minusFit(image, coef, axis(image.width), axis(image.height));
//
// Function for function runtime/ink.py (its docstrings say why): the paper flat (the border's median) or a
// quadratic surface, the noise the smallest of the paper's spread and what neighbouring pixels differ by.

import { median, otsu } from "./numeric.js";
import { K } from "./constants.js";

const f32 = Math.fround;

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
export function grain(data, width, height, channels = 1) {
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

export const axis = (n) =>
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
// grid of GRID to 2 GRID - 1 samples per side (refit to the samples close to the last fit, FIT_ROUNDS times), if
// the flat paper leaves much of the image off it and the surface puts clearly more on it. Returns the coefficients
// [6][channels] of 1, x, y, x*x, x*y, y*y over coordinates scaled to [-1, 1], whether they are a surface, and
// the share of the samples the better of the two explains.
export function fitPaper({ width: w, height: h, channels: c, data }, ax, ay) {
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
  if (paper >= K.FLAT_SHARE) return { coef: flat, uneven: false, explained: paper };
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
  const explained = Math.max(paper, share(terms, sample, n, c, coef, tol)); // the share the best paper explains
  if (explained < paper + K.SURFACE_GAIN) return { coef: flat, uneven: false, explained };
  return { coef, uneven: true, explained };
}

// The image minus the fitted paper (float32, as numpy computes it) and the sum of its squares per pixel.
export function minusFit({ width: w, height: h, channels: c, data }, coef, ax, ay) {
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
