"""The report's section on the runtime's image path (``images.json`` of ``pipeline.images``), in Markdown.

from pipeline.reporting import images
text = images.section(report.get("images"))   # "" when the stage did not run
"""

from __future__ import annotations

TARGET = 1.5  # median to_mnist over Pillow's decode of the same file, on the user-style sets (issue 18)


def section(found: dict | None) -> str:
    if not found:
        return ""
    compiled = found.get("core") == "native"
    timed = compiled and all(r.get("analysis_ms") is not None for r in found["sets"].values())  # schema 3 on
    rows = [
        "| set | images | decode ms | to_mnist ms | to_mnist / decode |"
        + (" of it the analysis, ms | the rest / decode |" if timed else "")
        + (" numpy ms | numpy / decode |" if compiled else "")
        + " accuracy | no digit found |",
        "|---|---:|---:|---:|---:|"
        + ("---:|---:|" if timed else "")
        + ("---:|---:|" if compiled else "")
        + "---:|---:|",
    ]
    user = set(found.get("user_style", ()))
    for name, r in found["sets"].items():
        ratio = f"{r['ratio']:.2f}" + (" (over target)" if name in user and r["ratio"] > TARGET else "")
        rest = (r["to_mnist_ms"] - r["analysis_ms"]) / r["decode_ms"] if timed else 0
        columns = (f" {r['analysis_ms']:.2f} | {rest:.2f} |" if timed else "") + (
            f" {r['numpy_ms']:.2f} | {r['numpy_ms'] / r['decode_ms']:.2f} |" if compiled else ""
        )
        rows.append(
            f"| {name}{' *' if name in user else ''} | {r['images']} | {r['decode_ms']:.2f} | {r['to_mnist_ms']:.2f} "
            f"| {ratio} |{columns} {r['accuracy']:.1%} | {r['no_digit']} |"
        )
    analysis = (
        "`to_mnist`'s analysis compiled (`runtime/native/ink.c`), and beside it the same with numpy's (`runtime.ink`, "
        "the reference)"
        if compiled
        else "`to_mnist`'s analysis in numpy (`runtime.ink`: the compiled core did not build on this machine)"
    )
    floor = (
        " The analysis's part of `to_mnist` is timed inside it; the rest (the decode, the reduction, the calls from "
        "Python) over the decode is as low as the ratio can go with any faster analysis."
        if timed
        else ""
    )
    speeds = ", ".join(f"{t['images_per_s']:,.0f} images/s with {t['jobs']} job(s)" for t in found["throughput"])
    return (
        "## The image path: decoding and preprocessing user-style images\n\n"
        f"Medians per image on this machine ({found['cores']} cores), each the least CPU time of "
        f"{found['repeat']} runs, decode and `to_mnist` of the same file side by side; accuracy of "
        f"`{found['model']}`; {analysis}. Sets marked * are the user-style ones the target ({TARGET}x the decode) is "
        f"set on.{floor}"
        "\n\n" + "\n".join(rows) + f"\n\nThrough `Classifier.classify_many` over every set: {speeds}.\n\n"
    )
