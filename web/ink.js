// Steps 2-5 of the page's preprocessing (paper, ink, blobs, crop and centre): runtime/native/ink.c, the C that
// runtime.preprocess runs, built for WebAssembly by the web stage (pipeline/web.py writes ink.wasm beside this
// module) and given runtime/preprocess.json's constants by name, as runtime/native/__init__.py gives them.
//
//     import { loadInk } from "./ink.js";
//     const core = await loadInk();                          // ink.wasm beside this module: fetched, or read in Node
//     const { ink, box, stroke } = core.find(image, alpha);  // runtime.native.Native.find; PreprocessError if no digit
//     const digit = core.centre(ink, image.width, image.height); // Float32Array(SIZE * SIZE)

import { K } from "./constants.js";

export class PreprocessError extends Error {
  constructor(message) {
    super(message);
    this.name = "PreprocessError";
  }
}

const WASM = new URL("./ink.wasm", import.meta.url);
const MEMORY = 5; // ink.c's code for a failed allocation; 1-4 are the reasons for no digit (K.NO_DIGIT)
let loaded = null;

// The compiled core, loaded once.
export function loadInk() {
  loaded ??= instantiate().catch((e) => {
    loaded = null; // a failed fetch may be retried
    throw new Error(`ink.wasm, the page's image analysis in WebAssembly, could not be loaded: ${e.message}`);
  });
  return loaded;
}

async function instantiate() {
  let bytes;
  if (WASM.protocol === "file:") {
    const { readFile } = await import("node:fs/promises"); // Node: the tests run the site's files as they are
    bytes = await readFile(WASM);
  } else {
    const response = await fetch(WASM);
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${WASM.pathname}`);
    bytes = await response.arrayBuffer();
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new Ink(instance.exports);
}

function check(status) {
  if (status === MEMORY) throw new RangeError("ink.wasm: out of memory");
  if (status !== 0) throw new PreprocessError(K.NO_DIGIT[status - 1]);
}

class Ink {
  constructor(exports) {
    this.exports = exports;
    const bytes = new Uint8Array(exports.memory.buffer, exports.ink_names.value);
    const names = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0))).split(",").filter(Boolean);
    const count = new Int32Array(exports.memory.buffer, exports.ink_constants.value, 1)[0];
    const missing = names.filter((name) => typeof K[name] !== "number");
    if (missing.length || names.length !== count) throw new Error(`constants not in preprocess.json: ${missing}`);
    this.call([8 * count], ([at]) => {
      this.view(Float64Array, at, count).set(names.map((name) => K[name]));
      exports.ink_configure(at);
    });
  }

  // A typed array over the module's memory (made anew each time: a grown memory detaches the old views).
  view(Type, at, length) {
    return new Type(this.exports.memory.buffer, at, length);
  }

  // fn(addresses) with one block of the module's memory cut into buffers of `sizes` bytes (8-byte aligned),
  // freed after; its result returned.
  call(sizes, fn) {
    const offsets = [];
    let total = 0;
    for (const size of sizes) {
      offsets.push(total);
      total += Math.ceil(size / 8) * 8;
    }
    const base = this.exports.malloc(Math.max(total, 8));
    if (base === 0) throw new RangeError("ink.wasm: out of memory");
    try {
      return fn(offsets.map((offset) => base + offset));
    } finally {
      this.exports.free(base);
    }
  }

  // Float pixels {width, height, channels, data} and alpha (Float32Array or null) -> the ink (Float32Array, w x h),
  // its box [left, top, right, bottom] (right and bottom exclusive) and the stroke width of its pixels over INK_CUT.
  find({ width, height, channels, data }, alpha) {
    const n = width * height;
    return this.call([4 * n * channels, alpha ? 4 * n : 0, 4 * n, 16, 8], ([pixels, opacity, ink, box, stroke]) => {
      this.view(Float32Array, pixels, n * channels).set(data);
      if (alpha) this.view(Float32Array, opacity, n).set(alpha);
      const status = this.exports.ink_find(pixels, width, height, channels, alpha ? opacity : 0, ink, box, stroke);
      check(status);
      return {
        ink: this.view(Float32Array, ink, n).slice(),
        box: Array.from(this.view(Int32Array, box, 4)),
        stroke: this.view(Float64Array, stroke, 1)[0],
      };
    });
  }

  // The ink (w x h) cropped, thickened if thin, scaled and centred: Float32Array(SIZE * SIZE).
  centre(ink, width, height) {
    const size = K.SIZE * K.SIZE;
    return this.call([4 * width * height, 4 * size], ([plane, out]) => {
      this.view(Float32Array, plane, width * height).set(ink);
      check(this.exports.ink_centre(plane, width, height, out));
      return this.view(Float32Array, out, size).slice();
    });
  }
}
