// Pillow's resampling and median filter, ported so the page sees the pixels runtime/preprocess.py sees.
//
//     import { resize8, resizeFloat, median3 } from "./resample.js";
//     const small = resize8(plane, 500, 300, 384, 230, "box");        // Uint8Array plane, Image.resize on "L"
//     const digit = resizeFloat(plane, 86, 104, 17, 20, "lanczos");   // Float32Array plane, Image.resize on "F"
//
// The same arithmetic as Pillow's Resample.c: a separable filter, horizontal pass first; coefficients
// normalised per output pixel; 8-bit images use 22-bit fixed-point coefficients and round each pass
// to 8 bits, float images accumulate in double and store float32. median3 is ImageFilter.MedianFilter(3)
// on an 8-bit plane (the image expanded by its edge pixels first).

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

export const FILTERS = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, weight: (x) => (x > -1 && x < 1 ? 1 - Math.abs(x) : 0) },
  lanczos: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

// Per output pixel: the first input pixel, how many, and their weights (precompute_coeffs).
function coefficients(inSize, outSize, name) {
  const filter = FILTERS[name];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const weights = new Float64Array(outSize * ksize);
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  for (let xx = 0; xx < outSize; xx++) {
    const centre = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(centre - support + 0.5), 0);
    const count = Math.min(Math.trunc(centre + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < count; x++) {
      const w = filter.weight((x + xmin - centre + 0.5) / filterScale);
      weights[xx * ksize + x] = w;
      total += w;
    }
    if (total !== 0) for (let x = 0; x < count; x++) weights[xx * ksize + x] /= total;
    starts[xx] = xmin;
    counts[xx] = count;
  }
  return { ksize, weights, starts, counts };
}

function fixedPoint(weights) {
  // normalize_coeffs_8bpc: C's (int) cast truncates towards zero.
  return Int32Array.from(weights, (w) => Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE));
}

// One pass along rows (step 1) or columns (step = width) of `src` into a new plane.
function pass(src, width, height, outWidth, outHeight, horizontal, c, eightBit) {
  const out = eightBit ? new Uint8Array(outWidth * outHeight) : new Float32Array(outWidth * outHeight);
  const k = eightBit ? fixedPoint(c.weights) : c.weights;
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const i = horizontal ? x : y;
      const base = i * c.ksize;
      let sum = eightBit ? ONE / 2 : 0;
      let at = horizontal ? y * width + c.starts[i] : c.starts[i] * width + x;
      const step = horizontal ? 1 : width;
      for (let j = 0; j < c.counts[i]; j++, at += step) sum += src[at] * k[base + j];
      out[y * outWidth + x] = eightBit ? Math.min(255, Math.max(0, Math.floor(sum / ONE))) : sum;
    }
  }
  return out;
}

function resize(plane, width, height, outWidth, outHeight, filter, eightBit) {
  let out = plane;
  let w = width;
  if (outWidth !== width) {
    out = pass(out, w, height, outWidth, height, true, coefficients(width, outWidth, filter), eightBit);
    w = outWidth;
  }
  if (outHeight !== height) {
    out = pass(out, w, height, w, outHeight, false, coefficients(height, outHeight, filter), eightBit);
  }
  return out === plane ? plane.slice() : out;
}

// Image.resize of an 8-bit plane ("L", or one channel of "RGB"/"RGBa").
export function resize8(plane, width, height, outWidth, outHeight, filter = "box") {
  return resize(plane, width, height, outWidth, outHeight, filter, true);
}

// Image.resize of a float32 plane ("F").
export function resizeFloat(plane, width, height, outWidth, outHeight, filter = "lanczos") {
  return resize(plane, width, height, outWidth, outHeight, filter, false);
}

// ImageFilter.MedianFilter(3) of an 8-bit plane: the 5th of the 9 sorted neighbours, edges replicated.
export function median3(plane, width, height) {
  const out = new Uint8Array(width * height);
  const v = new Int32Array(9);
  const sort2 = (a, b) => {
    if (v[a] > v[b]) [v[a], v[b]] = [v[b], v[a]];
  };
  for (let y = 0; y < height; y++) {
    const rows = [Math.max(0, y - 1), y, Math.min(height - 1, y + 1)].map((r) => r * width);
    for (let x = 0; x < width; x++) {
      const cols = [Math.max(0, x - 1), x, Math.min(width - 1, x + 1)];
      for (let j = 0; j < 9; j++) v[j] = plane[rows[(j / 3) | 0] + cols[j % 3]];
      // Paeth's 19-exchange median-of-9 network: v[4] ends up the median.
      for (const [a, b] of MEDIAN9) sort2(a, b);
      out[y * width + x] = v[4];
    }
  }
  return out;
}

// prettier-ignore
const MEDIAN9 = [
  [1, 2], [4, 5], [7, 8], [0, 1], [3, 4], [6, 7], [1, 2], [4, 5], [7, 8], [0, 3],
  [5, 8], [4, 7], [3, 6], [1, 4], [2, 5], [4, 7], [4, 2], [6, 4], [4, 2],
];
