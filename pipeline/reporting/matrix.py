"""The parity matrix of ``parity.json`` as report text: one row per ONNX artifact and session, one column per tier.

matrix.section(parity)     # markdown: how it was run, the table, the tiers that could not run
matrix.summary(parity)     # one sentence for the verdict
"""

from __future__ import annotations

from tabulate import tabulate

SESSION_NAMES = {"defaults": "ORT defaults", "runtime": "runtime options"}


def _cell(c: dict | None) -> str:
    """ "= " for bit-identical outputs; else digits that differ / max |delta probability|."""
    if c is None:
        return "-"
    if c["bit_exact"] or (c["bit_exact"] is None and c["max_abs_dprob"] == 0):  # a twin: the same probabilities
        return "="
    return f"{c['digits_differ']} / {c['max_abs_dprob']:.0e}"


def rows(parity: dict) -> tuple[list[str], list[list[str]]]:
    ran = [t for t in parity["tiers"] if t["status"] == "ran" and t["key"] != "host"]
    twins = sorted({k for a in parity["artifacts"] for k in a["twins"]})
    header = ["artifact", "session", *(t["key"] for t in ran), *(f"{k} (twin)" for k in twins)]
    body = []
    for a in parity["artifacts"]:
        for session in parity["sessions"]:
            cells = [_cell(a["tiers"].get(t["key"], {}).get(session)) for t in ran]
            twin = [_cell(a["twins"].get(k)) if session == "defaults" else "" for k in twins]
            name = a["name"] if a["agree"] else f"{a['name']} (digits differ)"
            body.append([name if session == parity["sessions"][0] else "", SESSION_NAMES[session], *cells, *twin])
    return header, body


def summary(parity: dict) -> str:
    ran = [t["key"] for t in parity["tiers"] if t["status"] == "ran"]
    differ = [a["name"] for a in parity["artifacts"] if not a["agree"]]
    n = parity["images"]["count"]
    if differ:
        return f"Digits differ between CPU tiers ({', '.join(ran)}; {n:,} images) for {', '.join(differ)}"
    return f"Every ONNX artifact gives the same digits on {', '.join(ran)} ({n:,} images)"


def section(parity: dict | None) -> str:
    if not parity:
        return ""
    header, body = rows(parity)
    tiers = "\n".join(
        f"- `{t['key']}`: {t['name']}, {t['how']}"
        + (f" ({t['seconds']:.0f} s)" if t["status"] == "ran" else f": **skipped**, {t['reason']}")
        for t in parity["tiers"]
    )
    im = parity["images"]
    return f"""## The same digits on every CPU: the parity matrix

Every ONNX artifact on {im["count"]:,} images ({im["validation"]:,} validation, {im["test"]:,} test), with
onnxruntime's default session options and with the runtime's, on each instruction-set tier onnxruntime
dispatches on, compared with this machine's onnxruntime. `=`: the raw outputs are bit for bit the
same; otherwise *digits that differ / largest |difference| of a probability*. Float models differ by
float rounding (a different summation order per ISA, about 1e-6); int8 models are uint8 x uint8,
which onnxruntime computes exactly on every CPU. A twin is the TFLite file computing the same
function, run by LiteRT and TFLite Micro (whose reference kernels round some requantisations
differently, a few int8 steps). The deploy rule picks only models whose digits agree on every tier.

{tabulate(body, header, tablefmt="github")}

{tiers}

"""
