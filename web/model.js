// One of the pipeline's ONNX models on onnxruntime-web's wasm backend, fed by its metadata_props.
//
//     import { loadModel } from "./model.js";
//     const model = await loadModel("model.onnx");         // ModelError with a readable message if it cannot be used
//     const probabilities = await model.predict(pixels);   // Float32Array(784 * n) in [0, 1] -> Float32Array(10 * n)
//     model.prediction(probabilities.subarray(0, 10));     // {digit, confidence, top: [[digit, p], ...]}
//
// The counterpart of runtime/classifier.py: the same checks of the model (pipeline metadata, digit labels,
// a batch of 28x28 single-channel images of the declared dtype) and the same session settings
// (runtime/session.py: one thread, every graph optimisation, int8 weights folded into float at load).

import { metadataProps } from "./onnx-metadata.js";
import { MetadataError, ModelSpec, PIXELS, SIDE } from "./model-spec.js";

const ORT_MODULE = "./ort.wasm.bundle.min.mjs";
const REBUILD = "rebuild the site with `make web`";

export class ModelError extends Error {
  constructor(message) {
    super(message);
    this.name = "ModelError";
  }
}

let runtime;

// onnxruntime-web, imported on first use so that a missing file is reported on the page, not as a blank page.
async function onnxruntime() {
  if (!runtime) {
    runtime = import(ORT_MODULE).then(
      (ort) => {
        ort.env.wasm.numThreads = 1; // one small image per run: threads cost more than they save, and need
        ort.env.wasm.proxy = false; // cross-origin isolation, which a plain static host does not give
        ort.env.logLevel = "error";
        return ort;
      },
      (e) => {
        throw new ModelError(`onnxruntime-web (${ORT_MODULE}) cannot be loaded: ${e.message}; ${REBUILD}`);
      },
    );
  }
  return runtime;
}

async function fetchBytes(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new ModelError(`cannot fetch the model ${url}: ${e.message}`);
  }
  if (!response.ok) {
    throw new ModelError(`cannot load the model ${url}: HTTP ${response.status} ${response.statusText}; ${REBUILD}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

export async function loadModel(url) {
  const ort = await onnxruntime();
  const bytes = await fetchBytes(url);
  let spec;
  try {
    spec = ModelSpec.fromProps(metadataProps(bytes));
  } catch (e) {
    const problem = e instanceof MetadataError ? e.message : `not a readable ONNX model (${e.message})`;
    throw new ModelError(`${url}: ${problem}`);
  }
  if (!spec.labels.every((label) => /^\d+$/.test(label))) {
    throw new ModelError(`${url}: its labels ${JSON.stringify(spec.labels)} are not digits`);
  }
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      logSeverityLevel: 3,
    });
  } catch (e) {
    const wasm = /wasm|WebAssembly|backend/i.test(e.message);
    const what = wasm ? "onnxruntime-web's WebAssembly cannot be started" : "onnxruntime-web cannot open it";
    throw new ModelError(`${url}: ${what} (${e.message})${wasm ? `; ${REBUILD}` : ""}`);
  }
  return new Model(url, ort, session, spec);
}

export class Model {
  constructor(url, ort, session, spec) {
    this.url = url;
    this.ort = ort;
    this.session = session;
    this.spec = spec;
    this.digits = spec.labels.map(Number);
    [this.input, this.batch] = this.checkSignature();
    this.queue = Promise.resolve(); // one run at a time: a session is not to be run concurrently
  }

  // The input's name and fixed batch size (0 if dynamic), once it is known to take 28x28 images.
  checkSignature() {
    const inputs = this.session.inputMetadata ?? [];
    const [input] = inputs;
    const image = this.spec.inputShape(1).slice(1);
    const shape = input?.shape ?? [];
    if (inputs.length !== 1 || shape.length !== 4 || shape.slice(1).some((d, i) => d !== image[i])) {
      const found = inputs.map((i) => `${i.name} [${i.shape}]`).join(", ");
      throw new ModelError(`${this.url}: its input (${found}) is not a batch of 28x28 images in ${this.spec.layout}`);
    }
    if (input.type !== this.spec.inputDtype) {
      throw new ModelError(
        `${this.url}: its input is ${input.type} but its metadata_props say ${this.spec.inputDtype}`,
      );
    }
    return [input.name, typeof shape[0] === "number" && shape[0] > 0 ? shape[0] : 0];
  }

  // Preprocessed images, Float32Array(784 * n) in [0, 1] -> probabilities, Float32Array(classes * n).
  predict(pixels) {
    const result = this.queue.then(() => this.run(pixels));
    this.queue = result.catch(() => {});
    return result;
  }

  async run(pixels) {
    const n = pixels.length / PIXELS;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`expected 784 x n pixels, got ${pixels.length}`);
    const step = this.batch || n;
    const classes = this.digits.length;
    const out = new Float32Array(n * classes);
    for (let start = 0; start < n; start += step) {
      const chunk = new Float32Array(step * PIXELS); // a fixed batch size: the last chunk padded with zeros
      chunk.set(pixels.subarray(start * PIXELS, Math.min(n, start + step) * PIXELS));
      const tensor = new this.ort.Tensor(this.spec.inputDtype, this.spec.encode(chunk), this.spec.inputShape(step));
      const results = await this.session.run({ [this.input]: tensor });
      const output = results[this.session.outputNames[0]];
      const probabilities = this.spec.decode(output.data, classes);
      out.set(probabilities.subarray(0, Math.min(step, n - start) * classes), start * classes);
      for (const value of Object.values(results)) value.dispose?.();
    }
    return out;
  }

  // {digit, confidence, top: every [digit, probability], most probable first} for one image's probabilities.
  prediction(probabilities) {
    const order = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const top = order.map((i) => [this.digits[i], probabilities[i]]);
    return { digit: top[0][0], confidence: top[0][1], top };
  }
}

export { PIXELS, SIDE };
