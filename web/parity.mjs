// What onnxruntime-web's wasm backend computes for given models and images: runtime/parity.py for the browser's kernels.
//
//     node web/parity.mjs images.bin outputs.json model.onnx [...]
//
// images.bin holds N MNIST-ready images, 784 uint8 pixels each, row by row. Every model runs on all of
// them with onnxruntime-web's defaults and with the page's session options (web/model.js), on the same
// wasm binary the page loads, in Node instead of a browser. outputs.json maps "NAME|defaults",
// "NAME|runtime" and "...|probabilities" to flat arrays, as runtime/parity.py's npz does.

import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import * as ort from "onnxruntime-web";
import { metadataProps } from "./onnx-metadata.js";
import { ModelSpec, PIXELS } from "./model-spec.js";

const BATCH = 250;
const SESSIONS = {
  defaults: { executionProviders: ["wasm"] },
  runtime: {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
    executionMode: "sequential",
  },
};

async function outputs(path, images) {
  const bytes = new Uint8Array(readFileSync(path));
  const spec = ModelSpec.fromProps(metadataProps(bytes));
  const n = images.length / PIXELS;
  const found = {};
  for (const [which, options] of Object.entries(SESSIONS)) {
    const session = await ort.InferenceSession.create(bytes, { ...options, logSeverityLevel: 3 });
    const raw = [];
    const probabilities = [];
    for (let start = 0; start < n; start += BATCH) {
      const count = Math.min(BATCH, n - start);
      const pixels = Float32Array.from(images.subarray(start * PIXELS, (start + count) * PIXELS), (v) =>
        Math.fround(v / 255),
      );
      const tensor = new ort.Tensor(spec.inputDtype, spec.encode(pixels), spec.inputShape(count));
      const result = await session.run({ [session.inputNames[0]]: tensor });
      const output = result[session.outputNames[0]];
      const classes = output.data.length / count;
      raw.push(...Array.from(output.data, Number));
      probabilities.push(...spec.decode(output.data, classes));
    }
    found[which] = raw;
    found[`${which}|probabilities`] = probabilities;
    await session.release();
  }
  return found;
}

async function main([images, out, ...models]) {
  if (!images || !out || !models.length) {
    console.error("usage: node web/parity.mjs images.bin outputs.json model.onnx [...]");
    process.exit(2);
  }
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  const pixels = new Uint8Array(readFileSync(images));
  const started = performance.now();
  const found = {};
  for (const model of models) {
    for (const [key, value] of Object.entries(await outputs(model, pixels))) found[`${basename(model)}|${key}`] = value;
  }
  writeFileSync(out, JSON.stringify(found));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(`${models.length} models x ${pixels.length / PIXELS} images in ${seconds} s (onnxruntime-web ${ort.env.versions?.web ?? ""})`);
}

await main(process.argv.slice(2));
