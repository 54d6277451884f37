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
import { axis, fitPaper, grain, minusFit, sigma, spread } from "./paper.js";

const f32 = Math.fround;

export class PreprocessError extends Error {
  constructor(message) {
    super(message);
    this.name = "PreprocessError";
  }
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

// How far each pixel is from the paper towards the ink's colour (a plane), and the noise level.
export function minusPaper(image) {
  const { width: w, height: h, channels: c } = image;
  const [ax, ay] = [axis(w), axis(h)];
  const { coef, uneven, explained } = fitPaper(image, ax, ay);
  const { residual, squares } = minusFit(image, coef, ax, ay);
  const distance = mapTo(Float32Array, squares, (s) => Math.sqrt(f32(s / c)));
  const surely = blobMask(threshold(distance, Math.max(otsu(distance), K.NOISE_SIGMAS * spread(distance, w, h))), w, h);
  if (countSet(surely) < 3) {
    if (explained < K.EXPLAINED_MIN) return eitherWay(channelMean(residual, c), Math.min(w, h) / K.WIDE_STROKE, w, h);
    return { distance, noise: sigma(distance, w, h) };
  }
  const stroke = strokeWidth(surely, w, h);
  let [shaded, coloured] = [uneven, surely];
  if (!uneven && stroke > Math.min(w, h) / K.WIDE_STROKE) {
    const cut = threshold(distance, otsu(Float32Array.from(where(distance, surely))));
    const upper = surely.map((v, i) => v & cut[i]);
    if (shadowed(surely, upper, stroke, w, h)) [shaded, coloured] = [true, upper];
  }
  const count = countSet(coloured);
  const inkColour = new Float64Array(c);
  for (let i = 0; i < w * h; i++) {
    if (!coloured[i]) continue;
    for (let ch = 0; ch < c; ch++) inkColour[ch] += residual[i * c + ch];
  }
  const mean = Array.from(inkColour, (v) => f32(v / count));
  const norm = Math.max(f32(Math.sqrt(mean.reduce((s, v) => s + v * v, 0))), 1e-6);
  const unit = mean.map((v) => f32(v / norm));
  const along = new Float64Array(w * h);
  for (let i = 0; i < w * h; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s = f32(s + f32(residual[i * c + ch] * unit[ch]));
    along[i] = s / Math.sqrt(c);
  }
  return unshade(along, stroke, shaded, w, h);
}

function countSet(mask) {
  let n = 0;
  for (const v of mask) n += v ? 1 : 0;
  return n;
}

// Whether what stands out of a flat paper (surely), wider than strokes can be, is mostly a shadow with the ink in
// it: under SHADOW_SHARE of it at its upper level, or that level in strokes under half as wide.
function shadowed(surely, upper, stroke, w, h) {
  return countSet(upper) < K.SHADOW_SHARE * countSet(surely) || strokeWidth(upper, w, h) < stroke / 2;
}

// The residual's mean over channels (float32, as numpy's mean(-1) of a float32 array), as float64.
function channelMean(residual, c) {
  const out = new Float64Array(residual.length / c);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s = f32(s + residual[i * c + ch]);
    out[i] = f32(s / c);
  }
  return out;
}

// unshade of the pixels darker than the paper, or of those lighter if that leaves clearly stronger ink (LIGHT_INK x
// its 99.5th percentile): for an image no paper explains, where nothing stood out of the flat one.
function eitherWay(grey, stroke, w, h) {
  const [dark, light] = [-1, 1].map((sign) => unshade(grey.map((v) => sign * v), stroke, true, w, h));
  const level = (t) => percentile(Array.from(t.distance), 99.5);
  return level(light) > K.LIGHT_INK * level(dark) ? light : dark;
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
    const opened = rank(rank(along, w, h, k, "min"), w, h, k, "max");
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
