// The page's image preprocessing: runtime/preprocess.py's steps in the browser, any digit image -> an MNIST-style 28x28.
//
//     import { toMnist } from "./preprocess.js";
//     const pixels = await toMnist(fileOrBlobOrImageData);  // Float32Array(784) in [0, 1], white ink on black
//
// Step 1 here, as runtime/decode.py does it (its docstring says why), with the constants of runtime/preprocess.json:
// decode (the size checked first; a big JPEG reduced by a power of two as Pillow's draft mode does), reduce by a
// whole factor to WORK_SIZE with Pillow's reduce (alpha premultiplied). Steps 2-5 are runtime/native/ink.c itself,
// built for WebAssembly (ink.js): find the ink, and a digit under DETAIL px once more on a region around it at more
// resolution; crop to it, thicken a thin pen, scale the longer side to 20 px with Pillow's Lanczos filter and place
// the centre of mass at (14, 14). The browser decodes the file: no colour management, like Pillow; 16-bit images
// come out 8-bit.

import { PreprocessError, loadInk } from "./ink.js";
import { K } from "./constants.js";

export { PreprocessError };
const f32 = Math.fround;

export async function toMnist(source) {
  const decoded =
    typeof ImageData !== "undefined" && source instanceof ImageData ? fromImageData(source) : await load(source);
  return mnistFromSource(decoded, await loadInk());
}

// A decoded image {planes: [r, g, b, a] Uint8Arrays, width, height} -> the 28x28 (runtime.preprocess.to_mnist),
// with `core` from loadInk().
export function mnistFromSource(source, core) {
  let { image, alpha, factor } = region(source, null, K.WORK_SIZE);
  let { ink, box, stroke } = core.find(image, alpha);
  const longest = Math.max(box[2] - box[0], box[3] - box[1]);
  if ((longest < K.DETAIL || stroke < K.THIN_WORK) && factor > 1) {
    const grown = around(box, Math.max(Math.floor(longest / 2), 2), factor, source);
    const want = Math.floor((Math.max(grown[2] - grown[0], grown[3] - grown[1]) * K.DETAIL_SIZE) / (longest * factor));
    ({ image, alpha } = region(source, grown, Math.max(want, 1)));
    ({ ink } = core.find(image, alpha));
  }
  return core.centre(ink, image.width, image.height);
}

// RGBA bytes (as ImageData holds them) -> the 28x28; `draft` > 1 reduces them first as a JPEG's draft mode would.
export async function mnistFromRgba(rgba, width, height, draft = 1) {
  checkSize(width, height);
  return mnistFromSource(fromRgba(rgba, width, height, draft), await loadInk());
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
  return [0, 1, 2, 3].map((c) => {
    const plane = new Uint8Array(count);
    for (let i = 0; i < count; i++) plane[i] = rgba[4 * i + c];
    return plane;
  });
}

// 8-bit values as float32 in [0, 1]: numpy's astype(float32) / 255.
function toFloat(plane) {
  const out = new Float32Array(plane.length);
  for (let i = 0; i < plane.length; i++) out[i] = plane[i] / 255;
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
  const [r, g, b, a] = cut.map(toFloat);
  let grey = true;
  const limit = f32(2 / 255);
  for (let i = 0; i < n && grey; i++) grey = Math.abs(f32(g[i] - r[i])) < limit && Math.abs(f32(b[i] - r[i])) < limit;
  const data = grey ? r : new Float32Array(n * 3);
  for (let i = 0; i < n && !grey; i++) {
    data[3 * i] = r[i];
    data[3 * i + 1] = g[i];
    data[3 * i + 2] = b[i];
  }
  const opaque = a.every((v) => !(v < f32(254 / 255)));
  return { image: { width, height, channels: grey ? 1 : 3, data }, alpha: opaque ? null : a, factor };
}
