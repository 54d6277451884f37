// The page: draw a digit (mouse, pen or touch) or drop an image, see what the deployed model says.
//
//     index.html?model=structured_w8.onnx     any ONNX model of the site instead of model.onnx
//     await window.mnistEdge.ready;           // resolves when the model is loaded (rejects if it cannot be)
//     await window.mnistEdge.classifyPixels(new Float32Array(784));   // MNIST-ready, [0, 1], white on black
//     await window.mnistEdge.classifyImage(fileOrBlobOrImageData);    // through the page's preprocessing
//     // both resolve to {digit, confidence, top: [[digit, probability], ...]}, most probable first
//
// The hooks are stable: #pad (the canvas), #file (the file input), #result (data-digit and data-confidence
// once a prediction is shown; data-count counts them). Everything runs in this page: nothing is sent anywhere.

import { PIXELS, loadModel } from "./model.js";
import { loadInk } from "./ink.js";
import { PreprocessError, toMnist } from "./preprocess.js";

const $ = (selector) => document.querySelector(selector);
const PEN = 18; // px of the pad's 280: about MNIST's stroke once the digit is scaled to 20 px
const TOP = 3; // bars shown

function modelName() {
  const name = new URLSearchParams(location.search).get("model") ?? "model.onnx";
  if (!/^[\w.-]+\.onnx$/.test(name)) throw new Error(`?model= must name an .onnx file of this site, not "${name}"`);
  return name;
}

function showError(message) {
  const error = $("#error");
  error.textContent = message;
  error.hidden = false;
}

async function start() {
  const name = modelName();
  const [model] = await Promise.all([loadModel(name), loadInk()]); // the image analysis: ink.wasm
  const accuracy =
    model.spec.testAccuracy === null ? "" : `${(100 * model.spec.testAccuracy).toFixed(2)} % on the MNIST test set`;
  // The artifact's own name (metadata "name"): model.onnx is a copy of one, say structured_w8.onnx.
  const artifact = model.spec.name && model.spec.name !== name ? model.spec.name : "";
  const about = [artifact, accuracy].filter(Boolean).join(", ");
  $("#status").textContent = `${name}${about ? ` (${about})` : ""}, onnxruntime-web on WebAssembly. Draw a digit.`;
  document.body.dataset.state = "ready";
  return model;
}

const loading = start();
loading.catch((e) => {
  $("#status").textContent = "The page could not start.";
  document.body.dataset.state = "error";
  showError(e.message);
});

async function classifyPixels(pixels) {
  const model = await loading;
  if (!(pixels instanceof Float32Array) || pixels.length !== PIXELS) {
    throw new TypeError(`classifyPixels takes a Float32Array of ${PIXELS} values in [0, 1]`);
  }
  return model.prediction(await model.predict(pixels));
}

async function classifyImage(source) {
  await loading;
  return classifyPixels(await toMnist(source));
}

window.mnistEdge = {
  ready: loading.then((model) => ({ model: model.url, spec: model.spec })),
  classifyPixels,
  classifyImage,
};
window.mnistEdge.ready.catch(() => {}); // shown on the page; a caller awaiting it still sees the rejection

// Preprocess, classify and show one input; errors (no digit, unreadable file) are shown in #result.
async function classifyAndShow(source) {
  const result = $("#result");
  try {
    const model = await loading;
    const t0 = performance.now();
    const pixels = await toMnist(source);
    const t1 = performance.now();
    const prediction = model.prediction(await model.predict(pixels));
    const t2 = performance.now();
    showPrediction(prediction, pixels, t1 - t0, t2 - t1);
  } catch (e) {
    if (!(e instanceof PreprocessError)) throw e;
    delete result.dataset.digit;
    delete result.dataset.confidence;
    result.dataset.error = e.message;
    result.querySelector(".digit").textContent = "?";
    result.querySelector(".confidence").textContent = e.message;
    $("#top").replaceChildren();
  }
  result.dataset.count = Number(result.dataset.count ?? 0) + 1;
}

function showPrediction({ digit, confidence, top }, pixels, preprocessMs, inferenceMs) {
  const result = $("#result");
  delete result.dataset.error;
  result.dataset.digit = digit;
  result.dataset.confidence = confidence.toFixed(6);
  result.querySelector(".digit").textContent = digit;
  result.querySelector(".confidence").textContent = `${(100 * confidence).toFixed(1)} % sure`;
  $("#top").replaceChildren(
    ...top.slice(0, TOP).map(([d, p]) => {
      const item = document.createElement("li");
      const percent = `${(100 * p).toFixed(1)} %`;
      const bar = `<span class="bar"><span></span></span>`;
      item.innerHTML = `<span class="label">${d}</span>${bar}<span class="p">${percent}</span>`;
      item.querySelector(".bar span").style.width = percent.replace(" ", "");
      return item;
    }),
  );
  const seen = $("#seen").getContext("2d");
  const image = seen.createImageData(28, 28);
  pixels.forEach((v, i) => {
    image.data.fill(Math.round(255 * v), 4 * i, 4 * i + 3);
    image.data[4 * i + 3] = 255;
  });
  seen.putImageData(image, 0, 0);
  $("#timing").textContent = `preprocessing ${preprocessMs.toFixed(1)} ms · inference ${inferenceMs.toFixed(2)} ms`;
}

// The pad: white paper, dark ink, round pen; each finished stroke is classified.
function setUpPad() {
  const pad = $("#pad");
  const ink = pad.getContext("2d", { willReadFrequently: true });
  let last = null;
  const clear = () => {
    ink.fillStyle = "#fff";
    ink.fillRect(0, 0, pad.width, pad.height);
  };
  const at = (event) => {
    const box = pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * pad.width) / box.width,
      ((event.clientY - box.top) * pad.height) / box.height,
    ];
  };
  const line = (from, to) => {
    ink.beginPath();
    ink.moveTo(...from);
    ink.lineTo(...to);
    ink.stroke();
  };
  Object.assign(ink, { strokeStyle: "#111", lineWidth: PEN, lineCap: "round", lineJoin: "round" });
  clear();
  pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    last = at(event);
    line(last, last);
  });
  pad.addEventListener("pointermove", (event) => {
    if (!last) return;
    for (const e of event.getCoalescedEvents?.() ?? [event]) {
      const point = at(e);
      line(last, point);
      last = point;
    }
  });
  const end = () => {
    if (!last) return;
    last = null;
    classifyAndShow(ink.getImageData(0, 0, pad.width, pad.height));
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("#clear").addEventListener("click", () => {
    clear();
    const result = $("#result");
    for (const key of ["digit", "confidence", "error"]) delete result.dataset[key];
    result.querySelector(".digit").textContent = "–";
    result.querySelector(".confidence").textContent = "";
    $("#top").replaceChildren();
  });
}

function setUpFiles() {
  const input = $("#file");
  input.addEventListener("change", () => {
    if (input.files.length) classifyAndShow(input.files[0]);
    input.value = "";
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    const [file] = event.dataTransfer.files;
    if (file) classifyAndShow(file);
  });
}

setUpPad();
setUpFiles();
