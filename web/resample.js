// Pillow's Lanczos resampling of a float plane and its median filter, ported so the page sees the pixels
// runtime/preprocess.py sees.
//
//     import { resizeFloat, median3 } from "./resample.js";
//     const digit = resizeFloat(plane, 86, 104, 17, 20);   // Float32Array plane, Image.resize on "F"
//
// The same arithmetic as Pillow's Resample.c: a separable filter, horizontal pass first; coefficients
// normalised per output pixel; float images accumulate in double and store float32. median3 is
// ImageFilter.MedianFilter(3) on an 8-bit plane (the image expanded by its edge pixels first).

function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const LANCZOS = { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) };

// Per output pixel: the first input pixel, how many, and their weights (precompute_coeffs).
function coefficients(inSize, outSize) {
  const filter = LANCZOS;
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

// One pass along rows (step 1) or columns (step = width) of `src` into a new float32 plane.
function pass(src, width, outWidth, outHeight, horizontal, c) {
  const out = new Float32Array(outWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const i = horizontal ? x : y;
      const base = i * c.ksize;
      let sum = 0;
      let at = horizontal ? y * width + c.starts[i] : c.starts[i] * width + x;
      const step = horizontal ? 1 : width;
      for (let j = 0; j < c.counts[i]; j++, at += step) sum += src[at] * c.weights[base + j];
      out[y * outWidth + x] = sum;
    }
  }
  return out;
}

// Image.resize of a float32 plane ("F") with Image.Resampling.LANCZOS.
export function resizeFloat(plane, width, height, outWidth, outHeight) {
  let out = plane;
  let w = width;
  if (outWidth !== width) {
    out = pass(out, w, outWidth, height, true, coefficients(width, outWidth));
    w = outWidth;
  }
  if (outHeight !== height) out = pass(out, w, w, outHeight, false, coefficients(height, outHeight));
  return out === plane ? plane.slice() : out;
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
