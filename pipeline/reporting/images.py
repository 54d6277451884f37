"""The report's section on the runtime's image path (``images.json`` of ``pipeline.images``), in Markdown.

from pipeline.reporting import images
text = images.section(report.get("images"))   # "" when the stage did not run
"""

from __future__ import annotations

TARGET = 1.5  # median to_mnist over Pillow's decode of the same file, on the user-style sets (issue 18)


def section(found: dict | None) -> str:
    if not found:
        return ""
    rows = [
        "| set | images | decode ms | to_mnist ms | to_mnist / decode | accuracy | no digit found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    user = set(found.get("user_style", ()))
    for name, r in found["sets"].items():
        ratio = f"{r['ratio']:.2f}" + (" (over target)" if name in user and r["ratio"] > TARGET else "")
        rows.append(
            f"| {name}{' *' if name in user else ''} | {r['images']} | {r['decode_ms']:.2f} | {r['to_mnist_ms']:.2f} "
            f"| {ratio} | {r['accuracy']:.1%} | {r['no_digit']} |"
        )
    speeds = ", ".join(f"{t['images_per_s']:,.0f} images/s with {t['jobs']} job(s)" for t in found["throughput"])
    return (
        "## The image path: decoding and preprocessing user-style images\n\n"
        f"Medians per image on this machine ({found['cores']} cores), each the least CPU time of "
        f"{found['repeat']} runs, decode and `to_mnist` of the same file side by side; accuracy of "
        f"`{found['model']}`. Sets marked * are the user-style ones the target ({TARGET}x the decode) is set on."
        "\n\n" + "\n".join(rows) + f"\n\nThrough `Classifier.classify_many` over every set: {speeds}.\n\n"
    )
