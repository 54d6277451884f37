"""The report's text, from report.json's dict: the verdict and the artifact tables (report.md: ``markdown``).

    from pipeline.reporting.text import table
    print(table(report["artifacts"], report["deployed"]))  # report: the dict that pipeline.report writes

Pure functions of that dict: nothing is measured, read, decided or written here (``pipeline.report`` writes,
``pipeline.deploy`` decides). The tables' row order is defined here.
"""

from __future__ import annotations

from pipeline.core import rules
from pipeline.deploy import BASELINE_ONNX, BASELINE_TFLITE
from pipeline.measure.devices import KEY_ISA
from pipeline.reporting import matrix

FORMAT_ORDER = {"keras": 0, "tflite": 1, "onnx": 2}  # table order: by format, then as benchmarked (lineage)


def _order(a: dict) -> int:
    return FORMAT_ORDER.get(a["format"], 9)  # sorted() is stable: within a format, benchmark.json's order


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
    defaults = rules.p50(d, "latency_us_ort_defaults")
    if defaults is not None:
        text += f"; batch-1 p50 {defaults:,.1f} µs under onnxruntime's defaults"
        text += f", {rules.p50(d):,.1f} µs with the runtime's options"
    for ref, key, field in (
        (BASELINE_ONNX, "p50_defaults_vs_baseline_fp32_onnx", "latency_us_ort_defaults"),
        (BASELINE_TFLITE, "p50_vs_baseline_fp32_tflite", "latency_us"),
    ):
        if c.get(key) is not None:
            r = c[key]
            speed = f"{1 / r:.1f}x faster" if r <= 1 else f"{r:.1f}x slower"
            text += f", {speed} than {ref} on {by_name[ref].get('runtime')} ({rules.p50(by_name[ref], field):,.1f} µs)"
    text += f". {measured_on(report)}"
    if report.get("parity"):
        text += f". {matrix.summary(report['parity'])}"
    met = [t for t in report["goals"] if t["met"]]
    missed = [t["target"] for t in report["goals"] if t["met"] is False]
    unknown = [t["target"] for t in report["goals"] if t["met"] is None]
    text += f". Goals met: {len(met)} of {len(report['goals'])}"
    text += f"; missed: {'; '.join(missed)}" if missed else ""
    text += f"; not measured: {'; '.join(unknown)}" if unknown else ""
    picks = "; ".join(f"{t['target']}: {t['pick']}" for t in report.get("targets", []))
    text += f". Pick per target: {picks}" if picks else ""
    elsewhere = [p for p in report.get("devices", {}).get("picks", [])[1:] if p["pick"] not in (None, name)]
    if elsewhere:
        text += ". On other devices measured the fastest qualifying model differs: "
        text += "; ".join(f"{p['device']}: {p['pick']}" for p in elsewhere)
    return text + "."


def measured_on(report: dict) -> str:
    """Which CPU the latency figures (and so the speed goals) are of: they hold for that ISA tier only."""
    env = report["environment"]
    machine = env.get("machine") or {}
    isa = [f for f in KEY_ISA if f in machine.get("isa", [])]
    flags = f" ({' '.join(isa)})" if isa else ""
    return (
        f"Latencies, and so the speed goals and the pick, are of this build machine: {env['cpu']}{flags}, "
        f"{env['cores']} cores; another CPU can rank the models differently (see Per device)"
    )


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
    ("bits/weight", "palette.bits_per_weight", ".2f", 1),
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
    from tabulate import tabulate

    cols = COLUMNS if markdown else [c for c in COLUMNS if c[0] in SUMMARY_COLUMNS]
    rows = []
    for a in sorted(artifacts, key=_order):
        rows.append([_cell(a, *c[1:]) for c in cols])
        if a["name"] == deployed:
            rows[-1][0] = f"**{a['name']}**" if markdown else f"{a['name']} *"
    align = ["right" if spec else "left" for _, _, spec, _ in cols]  # numbers are right-aligned
    return tabulate(
        rows,
        [h for h, *_ in cols],
        tablefmt="github" if markdown else "simple",
        colalign=align,
        disable_numparse=True,  # the cells are formatted already
    )
