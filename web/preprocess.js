// The page's image preprocessing: runtime/preprocess.py in JavaScript, any digit image -> an MNIST-style 28x28.
//
//     import { toMnist } from "./preprocess.js";
//     const pixels = await toMnist(fileOrBlobOrImageData);  // Float32Array(784) in [0, 1], white ink on black
//
// The steps and constants of runtime/preprocess.py (its docstring says why): decode (the size checked
// first; a big JPEG reduced by a power of two as Pillow's draft mode does), reduce to WORK_SIZE with
// Pillow's box filter (alpha premultiplied), find the ink (ink.js), crop to it, thicken a thin pen, scale
// the longer side to 20 px with Pillow's Lanczos filter and place the centre of mass at (14, 14).
// The browser decodes the file: no colour management, like Pillow; 16-bit images come out 8-bit.

import { PreprocessError, ink, minusPaper, ontoPaper } from "./ink.js";
import { mapTo, rank, rint, strokeWidth } from "./numeric.js";
import { resize8, resizeFloat } from "./resample.js";

export { PreprocessError };
export const MAX_PIXELS = 40_000_000;
export const MIN_SIDE = 8;
export const WORK_SIZE = 384;
export const BOX = 20;
export const SIZE = 28;
export const THIN = 1.2;
export const STROKE = 1.8;
const f32 = Math.fround;

export async function toMnist(source) {
  const { image, alpha } =
    typeof ImageData !== "undefined" && source instanceof ImageData ? fromImageData(source) : await load(source);
  return mnistFromPixels(image, alpha);
}

// Float pixels {width, height, channels, data} and alpha (or null), as runtime.preprocess.load gives them.
export function mnistFromPixels(image, alpha) {
  const { distance, noise } = minusPaper(ontoPaper(image, alpha));
  return centre(crop(ink(distance, noise, image.width, image.height), image.width, image.height));
}

function checkSize(width, height) {
  if (width * height > MAX_PIXELS) {
    throw new PreprocessError(
      `image too large: ${width}x${height} pixels (the limit is ${MAX_PIXELS.toLocaleString("en")})`,
    );
  }
  if (Math.min(width, height) < MIN_SIDE) {
    throw new PreprocessError(`image too small: ${width}x${height} pixels (at least ${MIN_SIDE}x${MIN_SIDE})`);
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
  const scale = Math.min(Math.floor(width / WORK_SIZE), Math.floor(height / WORK_SIZE));
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

// Pillow's Image.resize of an RGBA image: premultiplied (RGBa) while resizing, then unpremultiplied.
function resizeRgba([r, g, b, a], width, height, w, h) {
  const translucent = a.some((v) => v < 255);
  const muldiv255 = (v, alpha) => {
    const t = v * alpha + 128;
    return ((t >> 8) + t) >> 8;
  };
  const colours = translucent ? [r, g, b].map((p) => p.map((v, i) => muldiv255(v, a[i]))) : [r, g, b];
  const small = [...colours, a].map((p) => resize8(p, width, height, w, h, "box"));
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

export function fromRgba(rgba, width, height, draft = 1) {
  let rgbaPlanes = planes(rgba, width * height);
  if (draft > 1) ({ planes: rgbaPlanes, width, height } = reduceBy(rgbaPlanes, width, height, draft));
  if (Math.max(width, height) > WORK_SIZE) {
    const scale = WORK_SIZE / Math.max(width, height);
    const [w, h] = [Math.max(1, rint(width * scale)), Math.max(1, rint(height * scale))];
    rgbaPlanes = resizeRgba(rgbaPlanes, width, height, w, h);
    [width, height] = [w, h];
  }
  const n = width * height;
  const [r, g, b, a] = rgbaPlanes.map((p) => mapTo(Float32Array, p, (v) => v / 255));
  let grey = true;
  const limit = f32(2 / 255);
  for (let i = 0; i < n && grey; i++) grey = Math.abs(f32(g[i] - r[i])) < limit && Math.abs(f32(b[i] - r[i])) < limit;
  const data = grey ? r : new Float32Array(n * 3);
  if (!grey) for (let i = 0; i < n; i++) [data[3 * i], data[3 * i + 1], data[3 * i + 2]] = [r[i], g[i], b[i]];
  const opaque = a.every((v) => !(v < f32(254 / 255)));
  return { image: { width, height, channels: grey ? 1 : 3, data }, alpha: opaque ? null : a };
}

// The ink's bounding box; a pen much thinner than MNIST's (relative to the digit's size) is thickened.
function crop(inked, width, height) {
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (inked[y * width + x] === 0) continue;
      [top, bottom] = [Math.min(top, y), Math.max(bottom, y)];
      [left, right] = [Math.min(left, x), Math.max(right, x)];
    }
  }
  let [w, h] = [right - left + 1, bottom - top + 1];
  let out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) out.set(inked.subarray((top + y) * width + left, (top + y) * width + left + w), y * w);
  const stroke = strokeWidth(
    mapTo(Uint8Array, out, (v) => (v > f32(0.35) ? 1 : 0)),
    w,
    h,
  );
  const length = Math.max(w, h);
  if ((stroke * BOX) / length < THIN) {
    const k = 1 + 2 * rint(((STROKE * length) / BOX - stroke) / (1 - STROKE / BOX) / 2);
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

// Scale the longer side to BOX px (Lanczos) and place the centre of mass at (14, 14) of 28x28.
function centre({ plane, width: w, height: h }) {
  const scale = BOX / Math.max(h, w);
  const [sw, sh] = [Math.max(1, rint(w * scale)), Math.max(1, rint(h * scale))];
  const digit = sw === w && sh === h ? plane : resizeFloat(plane, w, h, sw, sh, "lanczos");
  let [mass, my, mx] = [0, 0, 0];
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const v = (digit[y * sw + x] = Math.min(1, Math.max(0, digit[y * sw + x])));
      mass += v;
      my += y * v;
      mx += x * v;
    }
  }
  const top = rint(SIZE / 2 - my / mass);
  const left = rint(SIZE / 2 - mx / mass);
  const out = new Float32Array(SIZE * SIZE);
  for (let y = Math.max(top, 0); y < Math.min(top + sh, SIZE); y++) {
    for (let x = Math.max(left, 0); x < Math.min(left + sw, SIZE); x++)
      out[y * SIZE + x] = digit[(y - top) * sw + x - left];
  }
  return out;
}
