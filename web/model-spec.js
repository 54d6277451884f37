// The contract between the pipeline's ONNX exports and this page: runtime/metadata.py, in JavaScript.
//
//     import { ModelSpec } from "./model-spec.js";
//     const spec = ModelSpec.fromProps(metadataProps(bytes));   // MetadataError if not a pipeline model
//     const input = spec.encode(pixels, batch);                  // Float32Array(784 * n) in [0, 1] -> typed array
//     const probabilities = spec.decode(outputData, classes);    // the output tensor's data -> Float32Array
//
// The keys, their defaults and the arithmetic are those of runtime/metadata.py's ModelSpec: layout
// (NHWC or NCHW), input dtype with scale and zero point (q = rint(x / scale) + zero_point, clipped),
// output as logits (softmax applied here) or probabilities, integer outputs dequantised. numpy
// computes these in float32, so the steps here round to float32 where it does.

export const LAYOUTS = ["NHWC", "NCHW"];
export const DTYPES = {
  float32: { array: Float32Array, min: -Infinity, max: Infinity, ort: "float32" },
  int8: { array: Int8Array, min: -128, max: 127, ort: "int8" },
  uint8: { array: Uint8Array, min: 0, max: 255, ort: "uint8" },
};
export const OUTPUTS = ["probabilities", "logits"];
export const SIDE = 28;
export const PIXELS = SIDE * SIDE;

export class MetadataError extends Error {}

const f32 = Math.fround;

// Round half to even, as numpy's rint and Python's round do (Math.round rounds half up).
export function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function number(props, key, fallback, parse) {
  if (!(key in props)) return fallback;
  const value = parse(props[key]);
  if (!Number.isFinite(value)) throw new MetadataError(`unreadable metadata_props: ${key}=${props[key]}`);
  return value;
}

export class ModelSpec {
  constructor(fields) {
    Object.assign(this, fields);
    if (!LAYOUTS.includes(this.layout)) throw new MetadataError(`layout "${this.layout}" is not one of ${LAYOUTS}`);
    if (!(this.inputDtype in DTYPES)) {
      throw new MetadataError(`input_dtype "${this.inputDtype}" is not one of ${Object.keys(DTYPES)}`);
    }
    if (!OUTPUTS.includes(this.output)) throw new MetadataError(`output "${this.output}" is not one of ${OUTPUTS}`);
    if (!(this.inputScale > 0) || !(this.outputScale > 0)) {
      throw new MetadataError("input_scale and output_scale must be > 0");
    }
    Object.freeze(this);
  }

  static fromProps(props) {
    const missing = ["layout", "input_dtype", "labels"].filter((k) => !(k in props));
    if (missing.length) {
      throw new MetadataError(`metadata_props lack ${missing.join(", ")}: not a model exported by this pipeline`);
    }
    let labels;
    try {
      labels = JSON.parse(props.labels);
    } catch (e) {
      throw new MetadataError(`unreadable metadata_props: labels (${e.message})`);
    }
    if (!Array.isArray(labels)) throw new MetadataError("unreadable metadata_props: labels is not a list");
    const int = (s) => (/^\s*[-+]?\d+\s*$/.test(s) ? Number(s) : NaN);
    return new ModelSpec({
      layout: props.layout,
      inputDtype: props.input_dtype,
      inputScale: number(props, "input_scale", 1, Number),
      inputZeroPoint: number(props, "input_zero_point", 0, int),
      output: props.output ?? "probabilities",
      outputScale: number(props, "output_scale", 1, Number),
      outputZeroPoint: number(props, "output_zero_point", 0, int),
      labels: labels.map(String),
      name: props.name ?? "",
      source: props.source ?? "",
      preprocessing: props.preprocessing ?? "",
      testAccuracy: "test_accuracy" in props ? Number(props.test_accuracy) : null,
    });
  }

  // The shape of the model's input for n images.
  inputShape(n) {
    return this.layout === "NHWC" ? [n, SIDE, SIDE, 1] : [n, 1, SIDE, SIDE];
  }

  // n images, Float32Array(784 * n) in [0, 1] -> the model's input data (the layouts agree with one channel).
  encode(pixels) {
    const dtype = DTYPES[this.inputDtype];
    if (this.inputDtype === "float32") return Float32Array.from(pixels);
    const out = new dtype.array(pixels.length);
    const scale = f32(this.inputScale);
    for (let i = 0; i < pixels.length; i++) {
      const q = rint(f32(pixels[i] / scale)) + this.inputZeroPoint;
      out[i] = Math.min(dtype.max, Math.max(dtype.min, q));
    }
    return out;
  }

  // The output tensor's data for n images of `classes` each -> float probabilities, row after row.
  decode(data, classes) {
    const y = new Float32Array(data.length);
    const integer = !(data instanceof Float32Array);
    for (let i = 0; i < data.length; i++) {
      y[i] = integer ? f32(f32(Number(data[i]) - this.outputZeroPoint) * f32(this.outputScale)) : data[i];
    }
    if (this.output === "logits") {
      for (let row = 0; row < y.length; row += classes) {
        const logits = y.subarray(row, row + classes);
        const top = Math.max(...logits);
        let sum = 0;
        for (let j = 0; j < classes; j++) sum += logits[j] = Math.exp(logits[j] - top);
        for (let j = 0; j < classes; j++) logits[j] /= sum;
      }
    }
    return y;
  }
}
