"""The report's text, from report.json's dict: the verdict, the artifact tables and ``report.md``.

    from pipeline.report_text import table
    print(table(report["artifacts"], report["deployed"]))  # report: the dict that pipeline.report writes

Pure functions of that dict: nothing is measured, read, decided or written here (``pipeline.report`` writes,
``pipeline.deploy`` decides). The tables' row order is defined here.
"""

from __future__ import annotations

from pipeline.deploy import BASELINE_ONNX, BASELINE_TFLITE

FORMAT_ORDER = {"keras": 0, "tflite": 1, "onnx": 2}  # table order: by format, then as benchmarked (lineage)


def _order(a: dict) -> int:
    return FORMAT_ORDER.get(a["format"], 9)  # sorted() is stable: within a format, benchmark.json's order


def _p50(a: dict, field: str = "latency_us") -> float | None:
    return (a.get(field) or {}).get("p50")


def verdict(report: dict) -> str:
    """The one-paragraph verdict: what is deployed and why, how it compares, and the pick per target."""
    by_name = {a["name"]: a for a in report["artifacts"]}
    name, base, sel, c = report["deployed"], report["baseline"], report["selection"], report["comparison"]
    d, drop = by_name[name], sel["max_accuracy_drop_pp"]
    if sel["fallback"]:
        why = f"no ONNX artifact is within {drop:g} pp of {base} on validation, so the most accurate one is deployed"
    else:
        qualified = ", ".join(sel["qualified"])
        why = (
            f"of the ONNX artifacts within {drop:g} pp of {base} on validation ({qualified}), the fastest at batch 1 "
            "under onnxruntime's default options"
        )
    text = (
        f"Deployed {name} ({d['precision']} {d['format']}, from {d['parent']}) as model.onnx: {why}. "
        f"Test accuracy {d['accuracy'] * 100:.2f} % ({c['accuracy_delta_pp']:+.2f} pp vs {base}'s "
        f"{by_name[base]['accuracy'] * 100:.2f} %), validation {d['val_accuracy'] * 100:.2f} % "
        f"({c['val_accuracy_delta_pp']:+.2f} pp)"
    )
    x = c["gzip_x_smaller_than_baseline_fp32_tflite"]
    if x is not None:
        ref = by_name[BASELINE_TFLITE]["gzip_bytes"] / 1000
        text += f"; gzip {d['gzip_bytes'] / 1000:,.1f} KB, {x:.1f}x smaller than {BASELINE_TFLITE} ({ref:,.1f} KB)"
    defaults = _p50(d, "latency_us_ort_defaults")
    if defaults is not None:
        text += f"; batch-1 p50 {defaults:,.1f} µs under onnxruntime's defaults"
        text += f", {_p50(d):,.1f} µs with the runtime's options"
    for ref, key, field in (
        (BASELINE_ONNX, "p50_defaults_vs_baseline_fp32_onnx", "latency_us_ort_defaults"),
        (BASELINE_TFLITE, "p50_vs_baseline_fp32_tflite", "latency_us"),
    ):
        if c.get(key) is not None:
            r = c[key]
            speed = f"{1 / r:.1f}x faster" if r <= 1 else f"{r:.1f}x slower"
            text += f", {speed} than {ref} on {by_name[ref].get('runtime')} ({_p50(by_name[ref], field):,.1f} µs)"
    met = [t for t in report["goals"] if t["met"]]
    missed = [t["target"] for t in report["goals"] if t["met"] is False]
    unknown = [t["target"] for t in report["goals"] if t["met"] is None]
    text += f". Goals met: {len(met)} of {len(report['goals'])}"
    text += f"; missed: {'; '.join(missed)}" if missed else ""
    text += f"; not measured: {'; '.join(unknown)}" if unknown else ""
    picks = "; ".join(f"{t['target']}: {t['pick']}" for t in report.get("targets", []))
    return text + (f". Pick per target: {picks}." if picks else ".")


# (header, field, number format, scale); a dotted field reads a nested one. The terminal shows SUMMARY_COLUMNS.
COLUMNS = (
    ("artifact", "name", "", 1),
    ("format", "format", "", 1),
    ("precision", "precision", "", 1),
    ("parent", "parent", "", 1),
    ("val acc %", "val_accuracy", ".2f", 100),
    ("accuracy %", "accuracy", ".2f", 100),
    ("errors", "errors", "d", 1),
    ("agreement %", "agreement_with_baseline", ".2f", 100),
    ("sparsity %", "sparsity", ".1f", 100),
    ("params", "params", ",", 1),
    ("MACs", "macs", ",", 1),
    ("size KB", "size_bytes", ",.1f", 1e-3),
    ("gzip KB", "gzip_bytes", ",.1f", 1e-3),
    ("p50 µs", "latency_us.p50", ",.1f", 1),
    ("p50 µs ORT defaults", "latency_us_ort_defaults.p50", ",.1f", 1),
    ("p90 µs", "latency_us.p90", ",.1f", 1),
    ("p99 µs", "latency_us.p99", ",.1f", 1),
    ("img/s", "throughput_ips.value", ",.0f", 1),
    ("runtime", "runtime", "", 1),
)
SUMMARY_COLUMNS = (
    "artifact",
    "precision",
    "val acc %",
    "accuracy %",
    "errors",
    "agreement %",
    "sparsity %",
    "gzip KB",
    "p50 µs",
    "p50 µs ORT defaults",
    "img/s",
    "runtime",
)


def _cell(a: dict, field: str, spec: str, scale: float) -> str:
    for key in field.split("."):
        a = a.get(key) if isinstance(a, dict) else None
    return "-" if a is None else format(a * scale if spec else a, spec)


def table(artifacts: list[dict], deployed: str, markdown: bool = False) -> str:
    """One row per artifact, by format then lineage; the deployed one marked * (bold in Markdown)."""
    cols = COLUMNS if markdown else [c for c in COLUMNS if c[0] in SUMMARY_COLUMNS]
    rows = [[h for h, *_ in cols]]
    for a in sorted(artifacts, key=_order):
        rows.append([_cell(a, *c[1:]) for c in cols])
        if a["name"] == deployed:
            rows[-1][0] = f"**{a['name']}**" if markdown else f"{a['name']} *"
    right = [bool(spec) for _, _, spec, _ in cols]  # numbers are right-aligned
    if markdown:
        rows.insert(1, ["---:" if r else "---" for r in right])
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    pad = lambda r: "  ".join(c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(r, widths, right, strict=True))  # noqa: E731
    return "\n".join(pad(r).rstrip() for r in rows)


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
        val, test, arena, speed = a["val_accuracy"], a["accuracy"], "-", _p50(a, t["speed"])
        if t["format"] == "tflite-micro":  # its own interpreter's figures, not LiteRT's
            f = t["figures"]
            val, test, arena, speed = f["val_accuracy"], f["accuracy"], f"{f['arena_bytes'] / 1000:,.1f}", None
        flag = "same" if t["test_pick"] == t["pick"] else f"**{t['test_pick']}**"
        rows.append(
            f"| {t['target']} | {t['pick']}{' (fallback)' if t['fallback'] else ''} | {val * 100:.2f} | "
            f"{test * 100:.2f} | {a['size_bytes'] / 1000:,.1f} | {a['gzip_bytes'] / 1000:,.1f} | {arena} | "
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


def _test_flag(sel: dict, deployed: str) -> str:
    if sel.get("test_pick") in (None, deployed):
        return "Ranking by test accuracy instead would have chosen the same model."
    return (
        f"Ranking by test accuracy instead would have chosen **{sel['test_pick']}**; the decision stays on validation."
    )


def _shown_target(t: dict) -> str:
    v = t["value"]
    return "-" if v is None else f"{v:+.2f} pp" if t["key"].endswith("_pp") else f"{v:.2f}x"


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
speed wherever it is loaded. Compare the table's two p50 columns for what onnxruntime's
default QDQ fusion does to the int8-compute models. The runtime settings, p50 µs in the same run:

{session_table(report.get("session_options"))}

## Accuracy vs size

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
