"""Stage 2b, sensitivity: how much validation accuracy each layer of the baseline loses alone
-> ``artifacts/sensitivity.json``.

    python -m pipeline.sensitivity

Evaluation only, no training. For each prunable layer of ``baseline.keras``, the others left
as they are: its kernel magnitude-pruned to each of ``sparsities`` (the smallest weights of
that kernel zeroed, as tfmot does, without fine-tuning); its weights and its output int8
fake-quantised; and the model narrowed at that layer only, to each width of ``width_fractions``
of the baseline's, keeping its filters/units of largest L1 norm (``structured.narrow``). The L1
norms that ranking uses are saved too. ``pipeline.nn.allocate`` turns the file into the prune
stage's per-layer sparsities and the structured widths.

Quantisation follows TFLite's int8 scheme: weights symmetric per output channel in
[-127, 127]; the layer's output tensor (after a fused ReLU; the logits for the classifier,
whose softmax TFLite computes from int8 logits) affine per tensor over the min/max seen on the
first ``calibration_images`` training images, the converter's calibration. Biases stay float:
TFLite keeps them in int32 at the product of the input and weight scales, far finer than int8.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import stage

log = logging.getLogger("pipeline.sensitivity")

LAYERS = config_mod.LAYERS  # every prunable layer, input to output
NARROWABLE = LAYERS[:-1]  # the classifier keeps its ten units


def settings(cfg: config_mod.Config) -> config_mod.SensitivityConfig:
    return cfg.sensitivity


def magnitude_pruned(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """``kernel`` with its ``round(sparsity * size)`` smallest-magnitude weights set to zero."""
    k = round(sparsity * kernel.size)
    out = kernel.copy()
    if k:
        out.reshape(-1)[np.argsort(np.abs(kernel), axis=None, kind="stable")[:k]] = 0
    return out


def quantised_weights(kernel: np.ndarray) -> np.ndarray:
    """Symmetric per-output-channel (last axis) int8 in [-127, 127], returned dequantised."""
    peak = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    scale = np.where(peak > 0, peak / 127, 1.0)
    return (np.clip(np.round(kernel / scale), -127, 127) * scale).astype(kernel.dtype)


def forward(net, x: np.ndarray, batch_size: int, *, kernels=None, quantise=None, ranges=None) -> np.ndarray:
    """Logits of ``net`` run layer by layer, with ``kernels`` ({layer: kernel}) replacing kernels and
    the output of each layer in ``quantise`` ({layer: (min, max)}) int8 fake-quantised. ``ranges``:
    a dict that receives the min/max of every prunable layer's output."""
    import tensorflow as tf

    from pipeline.nn import model

    kernels, quantise = kernels or {}, quantise or {}
    logits = []
    for start in range(0, len(x), batch_size):
        h = tf.constant(x[start : start + batch_size])
        for layer in net.layers:
            if not isinstance(layer, model.PRUNABLE):
                h = layer(h, training=False)
                continue
            kernel = tf.constant(kernels.get(layer.name, layer.kernel.numpy()))
            if isinstance(layer, model.keras.layers.Conv2D):
                h = tf.nn.bias_add(layer.convolution_op(h, kernel), layer.bias)
            else:
                h = tf.matmul(h, kernel) + layer.bias
            if layer.name != LAYERS[-1]:
                h = layer.activation(h)
            if ranges is not None:
                lo, hi = ranges.get(layer.name, (np.inf, -np.inf))
                ranges[layer.name] = (min(lo, float(tf.reduce_min(h))), max(hi, float(tf.reduce_max(h))))
            if layer.name in quantise:
                lo, hi = quantise[layer.name]
                h = tf.quantization.fake_quant_with_min_max_args(h, min(lo, 0.0), max(hi, 0.0), num_bits=8)
        logits.append(h.numpy())
    return np.concatenate(logits)


def l1_ranking(net) -> dict[str, dict]:
    """Per layer, the L1 norm of each output filter/unit (of the full baseline), strongest first."""
    found = {}
    for name in NARROWABLE:
        kernel = net.get_layer(name).kernel.numpy()
        norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
        order = np.argsort(-norms, kind="stable")
        found[name] = {"order": order.tolist(), "norms": [round(float(n), 5) for n in norms[order]]}
    return found


def widths_for(fractions: tuple[float, ...]) -> dict[str, list[int]]:
    """The widths measured per narrowable layer: each fraction of its baseline width, rounded, distinct."""
    from pipeline.nn import model

    return {
        name: sorted({max(1, round(f * full)) for f in fractions} - {full})
        for name, full in zip(NARROWABLE, model.WIDTHS, strict=True)
    }


def measure(net, data: dict, s: config_mod.SensitivityConfig) -> dict:
    """Every measurement of the stage on ``net`` (the baseline), as the JSON it writes."""
    from pipeline import structured
    from pipeline.nn import model

    x, y = data["x_val"], data["y_val"]

    def acc(**kw) -> float:
        return round(float(np.mean(np.argmax(forward(net, x, s.batch_size, **kw), axis=1) == y)), 6)

    base = acc()
    sizes = {name: int(net.get_layer(name).kernel.shape.num_elements()) for name in LAYERS}
    pruning = {
        name: [
            {
                "sparsity": sp,
                "val_accuracy": acc(kernels={name: magnitude_pruned(net.get_layer(name).kernel.numpy(), sp)}),
            }
            for sp in s.sparsities
        ]
        for name in LAYERS
    }
    ranges: dict[str, tuple[float, float]] = {}
    forward(net, data["x_train"][: s.calibration_images], s.batch_size, ranges=ranges)
    every = {name: quantised_weights(net.get_layer(name).kernel.numpy()) for name in LAYERS}
    quantisation = {
        "per_layer": {name: acc(kernels={name: every[name]}, quantise={name: ranges[name]}) for name in LAYERS},
        "weights_only": {name: acc(kernels={name: every[name]}) for name in LAYERS},
        "all_layers": acc(kernels=every, quantise=ranges),
        "output_ranges": {name: [round(lo, 5), round(hi, 5)] for name, (lo, hi) in ranges.items()},
        "calibration_images": s.calibration_images,
        "scheme": "weights: int8 symmetric per output channel; outputs: int8 affine per tensor, min/max calibrated",
    }
    narrowing = {}
    for i, (name, options) in enumerate(widths_for(s.width_fractions).items()):
        narrowing[name] = []
        for width in options:
            small = structured.narrow(net, tuple(width if j == i else w for j, w in enumerate(model.WIDTHS)))
            narrowing[name].append({"width": width, "val_accuracy": round(model.accuracy(small, x, y), 6)})
    return {
        "val_accuracy": base,
        "val_images": len(y),
        "kernel_weights": sizes,
        "widths": dict(zip(NARROWABLE, model.WIDTHS, strict=True)),
        "pruning": pruning,
        "quantisation": quantisation,
        "narrowing": narrowing,
        "l1_ranking": l1_ranking(net),
    }


def run(cfg: config_mod.Config, baseline: Path | None = None, output: Path | None = None) -> Path:
    from pipeline.nn import model

    baseline = baseline or cfg.artifacts / artifacts.BASELINE
    output = output or cfg.artifacts / "sensitivity.json"
    started = time.time()
    stage.seed_everything(cfg.seed)
    found = measure(model.load(baseline), data_mod.splits(cfg), settings(cfg))
    for name in LAYERS:
        drops = ", ".join(
            f"{p['sparsity']:.0%}: {found['val_accuracy'] - p['val_accuracy']:+.4f}" for p in found["pruning"][name]
        )
        q = found["val_accuracy"] - found["quantisation"]["per_layer"][name]
        log.info("%-13s validation accuracy lost, pruned %s; int8 %+.4f", name, drops, q)
    stage.write_json(output, found)
    stage.record(cfg, "sensitivity", [output], [baseline], started, val_accuracy=found["val_accuracy"])
    return output


def table(sensitivity: dict) -> list[dict]:
    """One row per layer for the report: its weights, and the validation accuracy it loses alone (pp)
    pruned to each measured sparsity and int8-quantised."""
    base = sensitivity["val_accuracy"]
    pp = lambda acc: round(100 * (base - acc), 2)  # noqa: E731
    return [
        {
            "layer": name,
            "weights": sensitivity["kernel_weights"][name],
            **{f"pruned {p['sparsity']:.0%}": pp(p["val_accuracy"]) for p in points},
            "int8": pp(sensitivity["quantisation"]["per_layer"][name]),
        }
        for name, points in sensitivity["pruning"].items()
    ]


def plot(sensitivity: dict, path: Path) -> None:
    """The report's figure: validation accuracy vs sparsity per layer, and the int8 bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = 100 * sensitivity["val_accuracy"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    for name, points in sensitivity["pruning"].items():
        xs = [0.0] + [p["sparsity"] for p in points]
        left.plot(xs, [base] + [100 * p["val_accuracy"] for p in points], marker="o", label=name)
    left.axhline(base - 0.1, color="gray", linestyle=":", label="baseline - 0.1 pp")
    left.set(xlabel="sparsity of that layer's kernel alone", ylabel="validation accuracy (%)")
    left.set_title("magnitude pruning, no fine-tuning", fontsize=10)
    left.set_ylim(max(min(left.get_ylim()[0], base - 1), base - 5), base + 0.2)
    left.legend(fontsize=8)
    q = sensitivity["quantisation"]["per_layer"]
    names = [*q, "all"]
    drops = [base - 100 * q[n] for n in q] + [base - 100 * sensitivity["quantisation"]["all_layers"]]
    right.bar(names, drops, color=["tab:blue"] * len(q) + ["tab:orange"])
    right.axhline(0, color="black", linewidth=0.8)
    right.set(ylabel="validation accuracy lost (pp)")
    right.set_title("int8 fake-quantised alone", fontsize=10)
    right.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    with stage.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main() -> None:
    stage.main("sensitivity", run)


if __name__ == "__main__":
    main()
