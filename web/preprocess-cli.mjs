// The page's preprocessing in Node, for tests/test_web_preprocess.py: RGBA images in, 28x28s out.
//
//     node preprocess-cli.mjs images.json out.json   # run beside preprocess.js and preprocess.json, as the site has them
//
// images.json is [{"width", "height", "rgba": base64 of width x height x 4 bytes, "draft": 1}, ...]; out.json is
// [{"pixels": [784 floats]} or {"error": message of a PreprocessError}, ...], in the same order.

import { readFileSync, writeFileSync } from "node:fs";
import { PreprocessError, mnistFromRgba } from "./preprocess.js";

function one({ width, height, rgba, draft = 1 }) {
  try {
    return { pixels: Array.from(mnistFromRgba(new Uint8Array(Buffer.from(rgba, "base64")), width, height, draft)) };
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
writeFileSync(output, JSON.stringify(JSON.parse(readFileSync(input, "utf8")).map(one)));
