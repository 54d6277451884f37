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
    rows = [
        "| set | images | decode ms | to_mnist ms | to_mnist / decode |"
        + (" numpy ms | numpy / decode |" if compiled else "")
        + " accuracy | no digit found |",
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if compiled else "") + "---:|---:|",
    ]
    user = set(found.get("user_style", ()))
    for name, r in found["sets"].items():
        ratio = f"{r['ratio']:.2f}" + (" (over target)" if name in user and r["ratio"] > TARGET else "")
        numpy = f" {r['numpy_ms']:.2f} | {r['numpy_ms'] / r['decode_ms']:.2f} |" if compiled else ""
        rows.append(
            f"| {name}{' *' if name in user else ''} | {r['images']} | {r['decode_ms']:.2f} | {r['to_mnist_ms']:.2f} "
            f"| {ratio} |{numpy} {r['accuracy']:.1%} | {r['no_digit']} |"
        )
    analysis = (
        "`to_mnist`'s analysis compiled (`runtime/native/ink.c`), and beside it the same with numpy's (`runtime.ink`, "
        "the reference)"
        if compiled
        else "`to_mnist`'s analysis in numpy (`runtime.ink`: the compiled core did not build on this machine)"
    )
    speeds = ", ".join(f"{t['images_per_s']:,.0f} images/s with {t['jobs']} job(s)" for t in found["throughput"])
    return (
        "## The image path: decoding and preprocessing user-style images\n\n"
        f"Medians per image on this machine ({found['cores']} cores), each the least CPU time of "
        f"{found['repeat']} runs, decode and `to_mnist` of the same file side by side; accuracy of "
        f"`{found['model']}`; {analysis}. Sets marked * are the user-style ones the target ({TARGET}x the decode) is "
        "set on."
        "\n\n" + "\n".join(rows) + f"\n\nThrough `Classifier.classify_many` over every set: {speeds}.\n\n"
    )
