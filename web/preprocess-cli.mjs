// The page's preprocessing in Node, for tests/test_web_preprocess.py: RGBA images in, 28x28s out.
//
//     node preprocess-cli.mjs images.json out.json   # beside preprocess.js, ink.wasm and preprocess.json, as in the site
//
// images.json is [{"width", "height", "rgba": base64 of width x height x 4 bytes, "draft": 1}, ...]; out.json is
// [{"pixels": [784 floats]} or {"error": message of a PreprocessError}, ...], in the same order.

import { readFileSync, writeFileSync } from "node:fs";
import { PreprocessError, mnistFromRgba } from "./preprocess.js";

async function one({ width, height, rgba, draft = 1 }) {
  try {
    const pixels = await mnistFromRgba(new Uint8Array(Buffer.from(rgba, "base64")), width, height, draft);
    return { pixels: Array.from(pixels) };
  } catch (e) {
    if (!(e instanceof PreprocessError)) throw e;
    return { error: e.message };
  }
}

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node preprocess-cli.mjs images.json out.json");
  process.exit(2);
}
const results = [];
for (const item of JSON.parse(readFileSync(input, "utf8"))) results.push(await one(item));
writeFileSync(output, JSON.stringify(results));
