"""MODEL_CARD.md for the deployed model (and the microcontroller pick), from report.json's dict.

    text = model_card.render(report)   # report: what pipeline.report writes to report.json

The sections people know from model cards (details and lineage, intended and out-of-scope
use, data, metrics, limitations, how to run it), every figure taken from the report, so the
card can never disagree with it. Nothing is measured or read here.
"""

from __future__ import annotations

import json

from pipeline.core import rules
from pipeline.reporting import damage as damage_mod
from pipeline.reporting.markdown import per_class_table, targets_table

ARCHITECTURE = (
    "the classic Keras tutorial's larger CNN: Conv 30@5x5 -> max-pool -> Conv 15@3x3 -> max-pool -> "
    "Dropout 0.2 -> Flatten -> Dense 128 -> Dense 50 -> Dense 10"
)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f} %"


def lineage_table(steps: list[dict]) -> str:
    rows = ["| step | artifact | stage | recipe | parameters |", "|---:|---|---|---|---|"]
    for i, s in enumerate(steps, 1):
        params = {**s.get("params", {}), **s.get("config", {})}
        shown = "; ".join(f"`{k}` {json.dumps(v, separators=(',', ':'))}" for k, v in params.items()) or "-"
        rows.append(f"| {i} | {s['name']} | {s['stage']} | {s['recipe']} | {shown} |")
    return "\n".join(rows)


def metrics_row(label: str, a: dict) -> str:
    defaults, options = rules.p50(a, "latency_us_ort_defaults"), rules.p50(a)
    cells = [label, _pct(a["val_accuracy"]), _pct(a["accuracy"]), str(a["errors"]), f"{a['gzip_bytes'] / 1000:,.1f}"]
    cells += ["-" if v is None else f"{v:,.1f}" for v in (defaults, options)]
    return "| " + " | ".join(cells) + " |"


def confusions(matrix: list[list[int]], top: int = 3) -> str:
    pairs = sorted(((n, t, p) for t, row in enumerate(matrix) for p, n in enumerate(row) if t != p and n), reverse=True)
    return ", ".join(f"{t} read as {p} ({n}x)" for n, t, p in pairs[:top]) or "none"


def render(report: dict) -> str:
    by_name = {a["name"]: a for a in report["artifacts"]}
    name, base = report["deployed"], report["baseline"]
    d, b, data = by_name[name], by_name[base], report["data"]
    damage = report["damage"][name]
    figures = report["figures"]
    weakest = min(range(10), key=lambda c: damage["per_class"][c])
    mcu = next((t for t in report["targets"] if t["format"] == "tflite-micro"), None)
    mcu_section = ""
    if mcu:
        m = mcu["figures"]
        mcu_section = f"""
## Microcontroller pick: {mcu["pick"]}

For TFLite Micro: {m["flash_bytes"] / 1000:.1f} KB of flash (the model), {m["arena_bytes"] / 1000:.1f} KB of
tensor arena, validation accuracy {_pct(m["val_accuracy"])}, test accuracy {_pct(m["accuracy"])}, agreeing with LiteRT
on {_pct(m["agreement_with_litert"])} of the test digits. The firmware files are `mcu/model_data.h`,
`mcu/model_data.cc` and `mcu/README.md` (the TFLM calls and the exact op resolver).
"""
    return f"""# Model card: mnist-edge digit classifier

Generated from `report.json` by `python -m pipeline.report`; every figure below is the report's.

## Model details

- **Deployed model:** `{name}` ({d["precision"]}, {d["format"]}), copied to `model.onnx`.
  {d["size_bytes"] / 1000:,.1f} KB on disk, {d["gzip_bytes"] / 1000:,.1f} KB gzipped,
  {d.get("params") or 0:,} parameters, {d.get("macs") or 0:,} multiply-accumulates per image.
- **Architecture:** {ARCHITECTURE}, then compressed as below.
- **Lineage** (each step from the record of the stage that made it):

{lineage_table(report["lineage"])}

- **Selection:** {report["selection"]["rule"]}. Decisions use the validation split; the test split is only reported.
- **Inputs and outputs:** one 28x28 grey image, ink white on black in [0, 1] (NHWC float32 unless the
  model's `metadata_props` say otherwise); ten scores for the digits 0-9 (`metadata_props` say whether they
  are probabilities or logits, and how to quantise int8 inputs).

## Intended use

Reading one handwritten digit per image on a device: a form field, a meter, a drawing pad, a kiosk.
The runtime (`runtime/`) normalises photos, scans and drawings the way MNIST was made before the model
sees them: ink separated from paper in any polarity, colour or alpha, uneven light and specks removed,
cropped to the ink, the longer side scaled to 20 px and centred by mass in 28x28.

## Out-of-scope use

- Anything but the single digits 0-9: letters, signs, several digits in one image (it will still answer
  one digit, with a confidence that does not mean "not a digit"), multi-line text.
- Feeding raw camera frames to the model without `runtime/preprocess.py` (or the web page's, which runs the same C).
- Images the preprocessing cannot separate: a digit touching the frame or other marks, very low contrast,
  strong perspective or rotation beyond a few degrees, typeset fonts far from handwriting.
- Decisions with consequences without a human check: about 1 digit in {round(1 / max(1 - d["accuracy"], 1e-9)):,}
  is read wrong on MNIST, more on real photos.

## Data

MNIST ({data["source"]}): {data["train"]:,} training images, of which the last {data["validation"]:,} are held out
as the validation split (all selections), and {data["test"]:,} test images (reported figures only). The arrays'
sha256 is `{data["sha256"]}`, checked on every load whatever the source.

## Metrics

| | validation | test | errors (test) | gzip KB | p50 µs, ORT defaults | p50 µs, runtime options |
|---|---:|---:|---:|---:|---:|---:|
{metrics_row(f"`{name}`", d)}
{metrics_row(f"`{base}` (baseline)", b)}

Per-class test accuracy against the baseline:

{per_class_table(damage)}

Calibration (expected calibration error over {damage_mod.BINS} confidence bins): {damage["ece"] * 100:.2f} % (baseline
{damage["ece_baseline"] * 100:.2f} %). Latency and size per deployment target:

{targets_table(report)}
{mcu_section}
## Limitations and known failure modes

- Weakest digit: {weakest} ({damage["per_class"][weakest] * 100:.1f} % on test). Most frequent confusions:
  {confusions(report["confusion_matrix"])}.
- Against the baseline, {len(damage["right_to_wrong"])} test digits went from right to wrong and
  {len(damage["wrong_to_right"])} from wrong to right: [gallery]({figures["flips"]}).
- Every misclassified test digit: [gallery]({figures["misclassified"]}); confusion matrix:
  [figure]({figures["confusion"]}); reliability: [figure]({figures["reliability"]}).
- Latency figures are for the build machine ({report["environment"]["cpu"]}); run `python -m runtime.bench` on
  the device to measure there.

## How to run it

```sh
python -m runtime.classify digit.png                 # onnxruntime, numpy and Pillow only
python -m runtime.classify --top 3 --json photos/    # a folder, JSON lines
make serve                                           # the draw-a-digit page on onnxruntime-web
```

From Python: `from runtime import Classifier; Classifier("model.onnx").classify("digit.png").digit`.
"""
