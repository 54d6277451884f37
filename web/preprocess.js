// The page's image preprocessing: runtime/preprocess.py in JavaScript, any digit image -> an MNIST-style 28x28.
//
//     import { toMnist } from "./preprocess.js";
//     const pixels = await toMnist(fileOrBlobOrImageData);  // Float32Array(784) in [0, 1], white ink on black
//
// The steps of runtime/preprocess.py and runtime/decode.py (their docstrings say why), with the constants of
// runtime/preprocess.json: decode (the size checked first; a big JPEG reduced by a power of two as Pillow's
// draft mode does), reduce by a whole factor to WORK_SIZE with Pillow's reduce (alpha premultiplied), find the
// ink (ink.js), and a digit under DETAIL px once more on a region around it at more resolution; crop to it,
// thicken a thin pen, scale the longer side to 20 px with Pillow's Lanczos filter and place the centre of mass
// at (14, 14). The browser decodes the file: no colour management, like Pillow; 16-bit images come out 8-bit.

import { PreprocessError, ink, minusPaper, ontoPaper } from "./ink.js";
import { mapTo, rank, rint, strokeWidth } from "./numeric.js";
import { resizeFloat } from "./resample.js";
import { K } from "./constants.js";

export { PreprocessError };
const f32 = Math.fround;

export async function toMnist(source) {
  const decoded =
    typeof ImageData !== "undefined" && source instanceof ImageData ? fromImageData(source) : await load(source);
  return mnistFromSource(decoded);
}

// A decoded image {planes: [r, g, b, a] Uint8Arrays, width, height} -> the 28x28 (runtime.preprocess.to_mnist).
export function mnistFromSource(source) {
  let { image, alpha, factor } = region(source, null, K.WORK_SIZE);
  let inked = find(image, alpha);
  const box = inkBox(inked, image.width, image.height);
  const longest = Math.max(box[2] - box[0], box[3] - box[1]);
  const thin = strokeWidth(mapTo(Uint8Array, inked, (v) => (v > f32(K.INK_CUT) ? 1 : 0)), image.width, image.height);
  if ((longest < K.DETAIL || thin < K.THIN_WORK) && factor > 1) {
    const grown = around(box, Math.max(Math.floor(longest / 2), 2), factor, source);
    const want = Math.floor((Math.max(grown[2] - grown[0], grown[3] - grown[1]) * K.DETAIL_SIZE) / (longest * factor));
    ({ image, alpha } = region(source, grown, Math.max(want, 1)));
    inked = find(image, alpha);
  }
  return centre(crop(inked, image.width, image.height));
}

// RGBA bytes (as ImageData holds them) -> the 28x28; `draft` > 1 reduces them first as a JPEG's draft mode would.
export function mnistFromRgba(rgba, width, height, draft = 1) {
  checkSize(width, height);
  return mnistFromSource(fromRgba(rgba, width, height, draft));
}

function find(image, alpha) {
  const { distance, noise } = minusPaper(ontoPaper(image, alpha));
  return ink(distance, noise, image.width, image.height);
}

// The ink's bounding box: left, top, right, bottom (exclusive).
function inkBox(inked, width, height) {
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (inked[y * width + x] === 0) continue;
      [top, bottom] = [Math.min(top, y), Math.max(bottom, y)];
      [left, right] = [Math.min(left, x), Math.max(right, x)];
    }
  }
  return [left, top, right + 1, bottom + 1];
}

// `box` of the reduced image grown by `grow` px on each side, in the full image's pixels, within it.
function around(box, grow, factor, { width, height }) {
  const [left, top, right, bottom] = box.map((v, i) => (v + (i < 2 ? -grow : grow)) * factor);
  return [Math.max(left, 0), Math.max(top, 0), Math.min(right, width), Math.min(bottom, height)];
}

function checkSize(width, height) {
  if (width * height > K.MAX_PIXELS) {
    throw new PreprocessError(
      `image too large: ${width}x${height} pixels (the limit is ${K.MAX_PIXELS.toLocaleString("en")})`,
    );
  }
  if (Math.max(width, height) < K.MIN_SIDE) {
    throw new PreprocessError(`image too small: ${width}x${height} pixels (at least ${K.MIN_SIDE} px on the longer side)`);
  }
}

// A Blob or File -> float pixels and alpha: the header read first, so an oversized image is refused undecoded.
export async function load(blob) {
  if (!(blob instanceof Blob)) throw new PreprocessError("not an image: expected a Blob, File or ImageData");
  if (blob.size === 0) throw new PreprocessError("empty file (0 bytes)");
  const url = URL.createObjectURL(blob);
  let width;
  let height;
  try {
    const img = new Image();
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = reject;
      img.src = url;
    });
    [width, height] = [img.naturalWidth, img.naturalHeight];
  } catch {
    throw new PreprocessError("not an image (or in a format this browser cannot read)");
  } finally {
    URL.revokeObjectURL(url);
  }
  checkSize(width, height);
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
      imageOrientation: "from-image",
    });
  } catch (e) {
    throw new PreprocessError(`corrupt or truncated image (${e.message})`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const head = new Uint8Array(await blob.slice(0, 3).arrayBuffer());
  const jpeg = head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  return fromRgba(rgba, canvas.width, canvas.height, jpeg ? draftScale(canvas.width, canvas.height) : 1);
}

export function fromImageData(imageData) {
  checkSize(imageData.width, imageData.height);
  return fromRgba(imageData.data, imageData.width, imageData.height, 1);
}

// The DCT scale Pillow's JpegImageFile.draft picks for (WORK_SIZE, WORK_SIZE): the largest of 8, 4, 2
// that keeps both sides at least WORK_SIZE.
function draftScale(width, height) {
  const scale = Math.min(Math.floor(width / K.WORK_SIZE), Math.floor(height / K.WORK_SIZE));
  return [8, 4, 2, 1].find((s) => scale >= s);
}

function planes(rgba, count) {
  const out = [0, 1, 2, 3].map(() => new Uint8Array(count));
  for (let i = 0; i < count; i++) for (let c = 0; c < 4; c++) out[c][i] = rgba[i * 4 + c];
  return out;
}

// The 8-bit planes averaged over s x s blocks: what a JPEG decoder's scaled IDCT gives, near enough.
function reduceBy(rgbaPlanes, width, height, s) {
  const [w, h] = [Math.ceil(width / s), Math.ceil(height / s)];
  const out = rgbaPlanes.map((plane) => {
    const small = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let [sum, n] = [0, 0];
        for (let yy = y * s; yy < Math.min(height, (y + 1) * s); yy++) {
          for (let xx = x * s; xx < Math.min(width, (x + 1) * s); xx++, n++) sum += plane[yy * width + xx];
        }
        small[y * w + x] = Math.round(sum / n);
      }
    }
    return small;
  });
  return { planes: out, width: w, height: h };
}

// Pillow's Image.reduce of one 8-bit plane: each factor x factor block's mean in its fixed point, the last
// blocks partial: ((sum + n / 2) * floor(2^24 / n)) >> 24.
function reducePlane(plane, width, height, factor) {
  const [w, h] = [Math.ceil(width / factor), Math.ceil(height / factor)];
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const [y0, y1] = [y * factor, Math.min(height, (y + 1) * factor)];
    for (let x = 0; x < w; x++) {
      const [x0, x1] = [x * factor, Math.min(width, (x + 1) * factor)];
      let sum = 0;
      for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) sum += plane[yy * width + xx];
      const n = (y1 - y0) * (x1 - x0);
      out[y * w + x] = Math.floor(((sum + (n >> 1)) * Math.floor(16777216 / n)) / 16777216);
    }
  }
  return out;
}

// Image.reduce of an RGBA image: premultiplied (RGBa) while reducing, then unpremultiplied, as Pillow does.
function reduceRgba([r, g, b, a], width, height, factor) {
  const translucent = a.some((v) => v < 255);
  const muldiv255 = (v, alpha) => {
    const t = v * alpha + 128;
    return ((t >> 8) + t) >> 8;
  };
  const colours = translucent ? [r, g, b].map((p) => p.map((v, i) => muldiv255(v, a[i]))) : [r, g, b];
  const small = [...colours, a].map((p) => reducePlane(p, width, height, factor));
  if (translucent) {
    const alpha = small[3];
    for (const p of small.slice(0, 3)) {
      for (let i = 0; i < p.length; i++) {
        if (alpha[i] !== 0 && alpha[i] !== 255) p[i] = Math.min(255, Math.floor((255 * p[i]) / alpha[i]));
      }
    }
  }
  return small;
}

// The decoded image, its planes split (and, for a JPEG, reduced by its draft scale).
export function fromRgba(rgba, width, height, draft = 1) {
  let rgbaPlanes = planes(rgba, width * height);
  if (draft > 1) ({ planes: rgbaPlanes, width, height } = reduceBy(rgbaPlanes, width, height, draft));
  return { planes: rgbaPlanes, width, height };
}

// runtime.decode.Source.region: `box` (left, top, right, bottom; null: all) reduced by the smallest whole factor
// that brings its longer side to `longest`, as float pixels {width, height, channels, data} and alpha (or null).
function region(source, box, longest) {
  const [left, top, right, bottom] = box ?? [0, 0, source.width, source.height];
  let [width, height] = [right - left, bottom - top];
  const factor = Math.max(1, Math.ceil(Math.max(width, height) / longest));
  let cut = source.planes.map((p) => {
    const out = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) out.set(p.subarray((top + y) * source.width + left, (top + y) * source.width + right), y * width);
    return out;
  });
  if (factor > 1) {
    cut = reduceRgba(cut, width, height, factor);
    [width, height] = [Math.ceil(width / factor), Math.ceil(height / factor)];
  }
  const n = width * height;
  const [r, g, b, a] = cut.map((p) => mapTo(Float32Array, p, (v) => v / 255));
  let grey = true;
  const limit = f32(2 / 255);
  for (let i = 0; i < n && grey; i++) grey = Math.abs(f32(g[i] - r[i])) < limit && Math.abs(f32(b[i] - r[i])) < limit;
  const data = grey ? r : new Float32Array(n * 3);
  if (!grey) for (let i = 0; i < n; i++) [data[3 * i], data[3 * i + 1], data[3 * i + 2]] = [r[i], g[i], b[i]];
  const opaque = a.every((v) => !(v < f32(254 / 255)));
  return { image: { width, height, channels: grey ? 1 : 3, data }, alpha: opaque ? null : a, factor };
}

// The ink's bounding box; a pen much thinner than MNIST's (relative to the digit's size) is thickened.
function crop(inked, width, height) {
  const [left, top, right1, bottom1] = inkBox(inked, width, height);
  const [right, bottom] = [right1 - 1, bottom1 - 1];
  let [w, h] = [right - left + 1, bottom - top + 1];
  let out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) out.set(inked.subarray((top + y) * width + left, (top + y) * width + left + w), y * w);
  const stroke = strokeWidth(
    mapTo(Uint8Array, out, (v) => (v > f32(K.INK_CUT) ? 1 : 0)),
    w,
    h,
  );
  const length = Math.max(w, h);
  if ((stroke * K.BOX) / length < K.THIN) {
    const k = 1 + 2 * rint(((K.STROKE * length) / K.BOX - stroke) / (1 - K.STROKE / K.BOX) / 2);
    if (k > 1) {
      const m = k >> 1;
      const padded = new Float32Array((w + 2 * m) * (h + 2 * m));
      for (let y = 0; y < h; y++) padded.set(out.subarray(y * w, (y + 1) * w), (y + m) * (w + 2 * m) + m);
      [w, h] = [w + 2 * m, h + 2 * m];
      out = rank(padded, w, h, k, "max");
    }
  }
  return { plane: out, width: w, height: h };
}

// Scale the longer side to K.BOX px (Lanczos) and place the centre of mass at (14, 14) of 28x28.
function centre({ plane, width: w, height: h }) {
  const scale = K.BOX / Math.max(h, w);
  const [sw, sh] = [Math.max(1, rint(w * scale)), Math.max(1, rint(h * scale))];
  const digit = sw === w && sh === h ? plane : resizeFloat(plane, w, h, sw, sh);
  let [mass, my, mx] = [0, 0, 0];
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const v = (digit[y * sw + x] = Math.min(1, Math.max(0, digit[y * sw + x])));
      mass += v;
      my += y * v;
      mx += x * v;
    }
  }
  const top = rint(K.SIZE / 2 - my / mass);
  const left = rint(K.SIZE / 2 - mx / mass);
  const out = new Float32Array(K.SIZE * K.SIZE);
  for (let y = Math.max(top, 0); y < Math.min(top + sh, K.SIZE); y++) {
    for (let x = Math.max(left, 0); x < Math.min(left + sw, K.SIZE); x++)
      out[y * K.SIZE + x] = digit[(y - top) * sw + x - left];
  }
  return out;
}
