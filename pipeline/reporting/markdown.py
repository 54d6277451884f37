"""report.md, from report.json's dict: the sections a reader goes through, in order.

    from pipeline.reporting.markdown import markdown
    text = markdown(report)   # report: the dict that pipeline.report writes to report.json

Pure functions of that dict, like ``pipeline.reporting.text`` (the verdict and the artifact table,
which this document embeds); ``targets_table`` and ``per_class_table`` serve the model card too.
"""

from __future__ import annotations

from pipeline.core import rules
from pipeline.reporting import clustering, cortex_m, images, matrix
from pipeline.reporting.text import table


def session_table(sessions: dict | None) -> str:
    """p50 of each measured ONNX model under each onnxruntime setting (the benchmark's ablation)."""
    if not sessions or not sessions.get("p50_us"):
        return "(not measured)"
    variants = sessions["variants"]
    rows = ["| model | " + " | ".join(variants) + " |", "|---" + "|---:" * len(variants) + "|"]
    for name, p50 in sessions["p50_us"].items():
        rows.append(f"| {name} | " + " | ".join(f"{p50[v]:.1f}" if v in p50 else "-" for v in variants) + " |")
    return "\n".join(rows)


def targets_table(report: dict) -> str:
    """One row per deployment target: the model picked for it, its accuracy, size and speed there."""
    by_name = {a["name"]: a for a in report["artifacts"]}
    rows = [
        "| target | pick | val acc % | test acc % | size (flash) KB | gzip KB | arena KB | p50 µs "
        "| test ranking would pick |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in report.get("targets", []):
        a = by_name[t["pick"]]
        val, test, arena, speed = a["val_accuracy"], a["accuracy"], "-", rules.p50(a, t["speed"])
        size = f"{a['size_bytes'] / 1000:,.1f}"
        if t["format"] == "tflite-micro":  # its own interpreter's figures, not LiteRT's
            f = t["figures"]
            val, test, arena, speed = f["val_accuracy"], f["accuracy"], f"{f['arena_bytes'] / 1000:,.1f}", None
        if t["format"] == "c99":  # the generated library on its first core: flash, and RAM with the stack
            f, core = t["figures"], next(iter(t["cores"].values()))
            val, test, speed = f["val_accuracy"], f["accuracy"], None
            size, arena = f"{core['library_flash_bytes'] / 1000:,.1f}", f"{core['ram_bytes'] / 1000:,.1f}"
        flag = "same" if t["test_pick"] == t["pick"] else f"**{t['test_pick']}**"
        rows.append(
            f"| {t['target']} | {t['pick']}{' (fallback)' if t['fallback'] else ''} | {val * 100:.2f} | "
            f"{test * 100:.2f} | {size} | {a['gzip_bytes'] / 1000:,.1f} | {arena} | "
            f"{'-' if speed is None else f'{speed:,.1f}'} | {flag} |"
        )
    return "\n".join(rows)


def per_class_table(d: dict) -> str:
    rows = ["| digit | " + " | ".join(str(c) for c in range(10)) + " |", "|---" + "|---:" * 10 + "|"]
    rows.append("| baseline % | " + " | ".join(f"{v * 100:.1f}" for v in d["per_class_baseline"]) + " |")
    rows.append("| this model % | " + " | ".join(f"{v * 100:.1f}" for v in d["per_class"]) + " |")
    rows.append("| change pp | " + " | ".join(f"{v:+.1f}" for v in d["per_class_delta_pp"]) + " |")
    return "\n".join(rows)


def damage_section(report: dict) -> str:
    """Per model compared with the baseline: per-class change, calibration, the flipped digits."""
    parts = []
    for name, d in report.get("damage", {}).items():
        parts.append(
            f"### {name}\n\n{per_class_table(d)}\n\n{len(d['right_to_wrong'])} test digits went from right to wrong, "
            f"{len(d['wrong_to_right'])} from wrong to right. Expected calibration error {d['ece'] * 100:.2f} % "
            f"(baseline {d['ece_baseline'] * 100:.2f} %)."
        )
    return "\n\n".join(parts) or "(not measured)"


def sensitivity_section(report: dict) -> str:
    """Per layer, the validation accuracy it loses alone (pp), and the figure."""
    rows = report.get("sensitivity_table")
    if not rows:
        return ""
    from tabulate import tabulate

    headers = list(rows[0])
    body = tabulate([[r[h] for h in headers] for r in rows], headers, tablefmt="github", floatfmt=".2f")
    return (
        "## Per-layer sensitivity (validation, no fine-tuning)\n\nValidation accuracy each layer loses alone, in pp, "
        "when its kernel is magnitude-pruned or its weights and output are int8-quantised; the prune stage's "
        f"per-layer sparsities and the structured widths come from these curves.\n\n{body}\n\n"
        f"![per-layer sensitivity]({report['figures']['sensitivity']})\n\n"
    )


def sweep_section(report: dict) -> str:
    """The sweep's points, its best point per target and the frontier plot, once `make sweep` has run."""
    sweep = report.get("sweep")
    if not sweep:
        return ""
    rows = [
        "| point | k | distilled | MACs | int8 val acc % | int8 test acc % | gzip KB | generated C flash KB | RAM KB | "
        "instructions per MAC |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(sweep["points"], key=lambda p: p["gzip_bytes"]):
        c = p.get("generated_c")
        mcu = f"{c['library_flash_bytes'] / 1000:.1f} | {c['ram_bytes'] / 1000:.2f} | {c['instructions_per_mac']:.2f}"
        rows.append(
            f"| {p['name']} | {p['clusters'] or '-'} | {_distilled(p['distill'])} | {p['macs']:,} | "
            f"{p['int8_val_accuracy'] * 100:.2f} | {p['int8_accuracy'] * 100:.2f} | {p['gzip_bytes'] / 1000:.1f} | "
            f"{mcu if c else '- | - | -'} |"
        )
    compared = [p["distill"] for p in sweep["points"] if len(p["distill"].get("val_accuracy_by_alpha", {})) > 1]
    won = sum(1 for d in compared if d["alpha"])
    b = sweep["best"]
    named = ", ".join(f"{target.replace('_', ' ')} **{b[target]}**" for target in ("smallest_download",
                      "smallest_mcu_flash", "smallest_mcu_ram", "fewest_macs") if b.get(target))  # fmt: skip
    return (
        "## Sweep: widths x sparsities x clusters\n\nEach point narrowed from the baseline and fine-tuned while "
        "pruned, with and without distilling from the baseline, keeping the better on validation (distillation "
        f"won at {won} of {len(compared)} points); a clustered point (k) clusters that model to k values a layer, "
        "distilling as it did; each converted to int8, its generated C library built and run on the first "
        "firmware core, bit-exact with TFLite Micro. "
        f"Best on validation within the bar: {named or 'none within the bar'}.\n\n"
        + "\n".join(rows)
        + f"\n\n![sweep]({report['figures']['sweep']})\n\n"
    )


def _distilled(d: dict) -> str:
    """A sweep point's distillation: yes or no, and the validation accuracies it was chosen on (k = 0 points)."""
    by_alpha = d.get("val_accuracy_by_alpha", {})
    shown = " / ".join(f"{v * 100:.2f}" for v in by_alpha.values())
    return ("yes" if d["alpha"] else "no") + (f" (val without / with: {shown})" if len(by_alpha) > 1 else "")


def _test_flag(sel: dict, deployed: str) -> str:
    if sel.get("test_pick") in (None, deployed):
        return "Ranking by test accuracy instead would have chosen the same model."
    return (
        f"Ranking by test accuracy instead would have chosen **{sel['test_pick']}**; the decision stays on validation."
    )


def _shown_target(t: dict) -> str:
    """A goal's value in its unit, which its key's suffix names: _pp, _kb, else a ratio."""
    v, key = t["value"], t["key"]
    if v is None:
        return "-"
    if key.endswith("_pp"):
        return f"{v:+.2f} pp"
    if key.endswith("_per_mac"):
        return f"{v:.2f}"
    return f"{v:,.2f} KB" if key.endswith("_kb") else f"{v:.2f}x"


def markdown(report: dict) -> str:
    """report.md: verdict, goals, targets, rule, table, figures, then how it was measured."""
    env, sel, n = report["environment"], report["selection"], report["dataset"]["test_samples"]
    n_val = report["dataset"].get("validation_samples", 0)
    fig = report["figures"]
    met = {True: "yes", False: "NO", None: "not measured"}
    goals = "\n".join(f"| {t['target']} | {_shown_target(t)} | {met[t['met']]} |" for t in report["goals"])
    lat = next((a["latency_us"] for a in report["artifacts"] if a.get("latency_us")), {})
    tput = next((a["throughput_ips"] for a in report["artifacts"] if a.get("throughput_ips")), {})
    st = report.get("settings", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env.get("versions", {}).items()))
    settings = ", ".join(f"{k}={v}" for k, v in report.get("settings", {}).items())
    qualified = ", ".join(sel["qualified"]) or "none (fallback: the most accurate ONNX artifact)"
    sections = "".join(
        (
            matrix.section(report.get("parity")),
            cortex_m.section(report.get("firmware"), report.get("mcu")),
            images.section(report.get("images")),
            sensitivity_section(report),
            clustering.section(report),
            sweep_section(report),
        )
    )
    return f"""# MNIST compression report

**Verdict.** {report["verdict"]}

| goal | deployed model | met |
|---|---:|---|
{goals}

*How to read this:* each row below is one file in the artifacts folder. Every decision is made on the
{n_val:,} validation images (held out of training); accuracy and errors are on the first {n:,} MNIST test
images, which are only reported. Agreement is the share of test images on which the artifact predicts the
same digit as {report["baseline"]}; p50/p90/p99 are batch-1 latency percentiles in µs (lower is better), with
the runtime's session options and, for ONNX, under onnxruntime's defaults; gzip KB is the gzip-compressed
file size, what a download costs (1 KB = 1000 bytes); the deployed model is in **bold**.

## Targets

{targets_table(report)}

### Per device

Latency of the ONNX models on each machine measured (the build machine's benchmark, and every
`python -m runtime.bench` JSON given with `make report DEVICES="pi5.json ..."` or dropped into
`devices/`), batch 1, one thread; the pick per device is the fastest under onnxruntime's defaults
among the models that qualified on validation.

{report.get("devices", {}).get("table", "(none)")}

## Deployed: {report["deployed"]}

Selection rule (config `deploy.max_accuracy_drop` = {sel["max_accuracy_drop_pp"]:g} pp): {sel["rule"]}.
Qualified, fastest first: {qualified}. {_test_flag(sel, report["deployed"])} It is copied to `model.onnx` with its
validation and test accuracy in its metadata and a summary in its `doc_string`.

## All artifacts

{table(report["artifacts"], report["deployed"], markdown=True)}

## Speed: what was tried

Batch-1 latency is mostly fixed per-call and per-node overhead for a model this small, and
the convolutions. Structured pruning (`structured*`) removes whole filters and units, so
every runtime does fewer multiply-adds; graph passes remove the nodes that only move data;
int8 *storage* behind Cast -> Mul (`structured_w8.onnx`) is folded to float weights at load
by any onnxruntime with its default options, so the file stays small and runs at float
speed wherever it is loaded. The int8-compute models run on onnxruntime's integer kernels (its
default QDQ fusion) under both sessions: in float they were up to 30 % faster at batch 1 here, but
not the same integers on every CPU (`runtime/session.py`). The runtime settings, p50 µs in the same run:

{session_table(report.get("session_options"))}

{sections}## Accuracy vs size

![accuracy vs gzip size]({fig["pareto"]})

Pareto frontier (no other artifact is both smaller and more accurate): {", ".join(report["pareto_front"])}.

## Batch-1 latency

![batch-1 latency per artifact]({fig["latency"]})

## The deployed model's errors

![confusion matrix of the deployed model]({fig["confusion"]})

![misclassified test digits, true→predicted]({fig["misclassified"]})

## What compression changed, against {report["baseline"]}

{damage_section(report)}

![test digits that flipped against the baseline]({fig["flips"]})

![reliability: accuracy against confidence]({fig["reliability"]})

## How it was measured

Latency: batch {lat.get("batch", 1)} on {lat.get("threads", "?")} thread(s), {lat.get("runs", "?")} timed runs per
artifact after {st.get("warmup_runs", "?")} warm-up runs, the artifacts interleaved over {st.get("rounds", "?")}
rounds. Throughput: batch {tput.get("batch", "?")} on {tput.get("threads", "?")} thread(s) for
{st.get("throughput_seconds", "?")} s per artifact.
All settings: {settings}.

Environment: {env["cpu"]}, {env["cores"]} cores, Python {env["python"]}, measured {env.get("date", "?")}.
Versions: {versions}.
"""
