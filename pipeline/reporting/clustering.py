"""The report's clustering and distillation sections, from the benchmark's rows and the registry.

    facts = clustering.facts(cfg, bench["artifacts"])   # {"clustering": [...], "distillation": {...}}
    text = clustering.section(report)                   # markdown, "" without clustered artifacts

Clustering: every artifact made from a clustered model, beside the int8 files made without
clustering, with k, the distinct weight values the benchmark found in its most varied output
channel, the index bits per weight that implies, accuracy and gzip size. Distillation: each pair of
registry entries that differ only in the weight of the teacher's soft targets, on validation and test.
"""

from __future__ import annotations

import dataclasses

from pipeline import artifacts

REFERENCE = artifacts.reference("tflite")  # gzip sizes are compared with the baseline's fp32 TFLite file


def _clustered_ancestor(name: str, cfg) -> artifacts.Recipe | None:
    found = [artifacts.get(n).recipe for n in artifacts.lineage(name) if artifacts.get(n).kind == "cluster"]
    return found[0].resolved(cfg) if found else None


def facts(cfg, rows: list[dict]) -> dict:
    """The rows of both sections (measured figures from ``rows``, the benchmark's)."""
    by_name = {r["name"]: r for r in rows}
    reference = by_name.get(REFERENCE, {}).get("gzip_bytes")
    table = []
    for r in rows:
        recipe = _clustered_ancestor(r["name"], cfg)
        if recipe is None and not (r["precision"] == "int8" and r["format"] == "tflite"):
            continue
        p = r.get("palette") or {}
        table.append(
            {
                "name": r["name"],
                "clusters": recipe.clusters if recipe else None,
                "per_channel": recipe.per_channel if recipe else None,
                "preserve_sparsity": recipe.preserve_sparsity if recipe else None,
                "max_distinct_per_channel": p.get("max_distinct_per_channel"),
                "distinct_per_layer": {k: v["distinct_per_channel"] for k, v in p.get("layers", {}).items()},
                "bits_per_weight": p.get("bits_per_weight"),
                "val_accuracy": r["val_accuracy"],
                "accuracy": r["accuracy"],
                "sparsity": r["sparsity"],
                "gzip_bytes": r["gzip_bytes"],
                "gzip_x_smaller": round(reference / r["gzip_bytes"], 2) if reference else None,
            }
        )
    groups: dict[tuple, list[artifacts.Artifact]] = {}
    for a in artifacts.ARTIFACTS:
        if "distill_alpha" in {f.name for f in dataclasses.fields(a.recipe)}:
            key = (a.parent, dataclasses.replace(a.recipe.resolved(cfg), distill_alpha=0.0))
            groups.setdefault(key, []).append(a)
    pairs = [
        sorted(
            (
                {"name": a.name, "alpha": a.recipe.resolved(cfg).distill_alpha}
                | {k: by_name[a.name][k] for k in ("val_accuracy", "accuracy")}
                for a in group
                if a.name in by_name
            ),
            key=lambda m: m["alpha"],
        )
        for group in groups.values()
        if len(group) > 1
    ]
    return {
        "clustering": table,
        "distillation": {"temperature": cfg.distill.temperature, "default_alpha": cfg.distill.alpha, "pairs": pairs},
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}"


def section(report: dict) -> str:
    rows = report.get("clustering") or []
    if not any(r["clusters"] for r in rows):
        return ""
    lines = [
        "| artifact | k | per channel | distinct per channel (max; per layer) | bits/weight | val acc % | "
        f"test acc % | sparsity % | gzip KB | x smaller than {REFERENCE} (gzip) |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["gzip_bytes"]):
        layers = ", ".join(f"{k} {v}" for k, v in r["distinct_per_layer"].items())
        channel = {None: "-", True: "yes", False: "no"}[r["per_channel"]]
        lines.append(
            f"| {r['name']} | {r['clusters'] or '-'} | {channel} | {r['max_distinct_per_channel']}; {layers} | "
            f"{r['bits_per_weight'] or 0:.2f} | {_pct(r['val_accuracy'])} | {_pct(r['accuracy'])} | "
            f"{r['sparsity'] * 100:.1f} | {r['gzip_bytes'] / 1000:,.1f} | {r['gzip_x_smaller'] or 0:.1f} |"
        )
    d = report["distillation"]
    pairs = "\n".join(
        "| " + " | ".join(f"{m['name']} (alpha {m['alpha']:g}): {_pct(m['val_accuracy'])} / {_pct(m['accuracy'])}"
                          for m in pair) + " |"
        for pair in d["pairs"]
    )  # fmt: skip
    return (
        "## Clustering: the bits per weight\n\n"
        + frontier_text(report)
        + "Each clustered model's kernels hold k values per layer (per output "
        "channel of a convolution where clustered per channel); CQAT and PCQAT take them to int8 keeping the "
        "centroids. The benchmark counts the distinct values per output channel in every file, and the bits an "
        "index into a per-channel table of them needs (the tables not counted). The int8 files made without "
        "clustering are shown beside them.\n\n"
        + "\n".join(lines)
        + "\n\n## Distillation\n\nValidation / test accuracy % of each model fine-tuned with and without the "
        f"baseline as teacher (temperature {d['temperature']:g}); every other training stage uses "
        f"config distill.alpha = {d['default_alpha']:g} (0: labels only).\n\n"
        + ("| without | with |\n|---|---|\n" + pairs if pairs else "No registry entry has a distilled twin.")
        + "\n\n"
    )


def frontier_text(report: dict) -> str:
    """The size frontier's two goals (deploy.json's ``frontier``): the smallest file and the smallest generated C
    library within the accuracy bar on validation, and what each is made of, which is what stands in the way."""
    f, goals = report.get("frontier") or {}, {g["key"]: g for g in report.get("goals", [])}
    sweep = "The sweep below" if report.get("sweep") else "`make sweep`"
    lines = []
    if f.get("download"):
        d, g = f["download"], goals["frontier_download_x"]
        bits = d["bits_per_weight"] or 8
        verdict = "met" if g["met"] else "not met"
        lines.append(
            f"- **Download:** the smallest ONNX or TFLite file within the bar is {d['name']}, gzip "
            f"{d['gzip_bytes'] / 1000:.1f} KB, {d['x_smaller']:.1f}x smaller than {REFERENCE} (goal >= "
            f"{g['limit']:g}x: {verdict}), validation / test {_pct(d['val_accuracy'])} / {_pct(d['accuracy'])} %. "
            f"The goal is {d['gzip_goal_bytes'] / 1000:.1f} KB; this file's {d['params']:,} weights at {bits:.2f} bits "
            f"each are {d['params'] * bits / 8000:.1f} KB of information, which the file stores a byte each (gzip "
            "recovers part of that): within the bar it takes fewer weights or fewer bits per weight"
        )
    if f.get("library"):
        m, g = f["library"], goals["frontier_lib_flash_kb"]
        rest = m["library_flash_bytes"] - m["weight_bytes"]
        lines.append(
            f"- **Microcontroller:** the smallest generated C library within the bar is {m['name']}'s, "
            f"{m['library_flash_bytes'] / 1000:.1f} KB of flash (goal <= {g['limit']:g} KB: "
            f"{'met' if g['met'] else 'not met'}), test {_pct(m['accuracy'])} % on the emulated core: "
            f"{m['weight_bytes'] / 1000:.1f} KB of weights ({m['int8_weight_bytes'] / 1000:.1f} KB as plain int8) "
            f"and {rest / 1000:.1f} KB of kernels, biases and requantisation tables"
        )
    if not lines:
        return ""
    return (
        "The size frontier, whichever model a target picks (the bar: validation):\n\n"
        + ";\n".join(lines)
        + (f". {sweep} measures narrower models.\n\n")
    )
