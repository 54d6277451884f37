"""Device benchmarks (``python -m runtime.bench`` on other machines): read them, pick per device, tabulate.

    found = devices.load(["pi5.json", "phone.json"])          # validated against runtime/bench_schema.json
    devices.pick(found[0], qualified=["structured_w8.onnx", ...])  # fastest p50 under ORT defaults, or None
    print(devices.table(found, qualified))                    # Markdown, one row per device and model

Which models qualify (accuracy within the allowed drop) is the deploy rule's decision, made on
the build machine's validation figures; here a device only decides which of them is fastest on
it, under onnxruntime's defaults as every consumer but this runtime opens the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import jsonschema
from tabulate import tabulate

from pipeline.core import stage

SCHEMA = "bench_schema.json"  # in the runtime package, beside runtime/bench.py which writes these files
PICKED = "**pick**"
# The CPU features that most change which kernels win: shown beside the CPU in the table.
KEY_ISA = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve")


def schema() -> dict:
    return json.loads((resources.files("runtime") / SCHEMA).read_text())


def load(paths: Iterable[str | Path]) -> list[dict]:
    """The device JSONs, each checked against the schema; PipelineError naming the first bad file."""
    validator = jsonschema.Draft202012Validator(schema())
    found, names = [], {}
    for path in map(Path, paths):
        try:
            device = json.loads(path.read_text())
        except OSError as e:
            raise stage.PipelineError(f"{path}: cannot read the device benchmark ({e.strerror})") from None
        except ValueError as e:
            raise stage.PipelineError(f"{path}: not JSON ({e})") from None
        error = jsonschema.exceptions.best_match(validator.iter_errors(device))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "the top level"
            problem = f"not a device benchmark from `python -m runtime.bench`: at {where}: {error.message}"
            raise stage.PipelineError(f"{path}: {problem}"[:400])
        name = device["machine"]["name"]
        if name in names:
            raise stage.PipelineError(f"{path} and {names[name]} both name their device {name!r}: rerun with --name")
        names[name] = path
        found.append(device)
    return found


def pick(device: dict, qualified: list[str]) -> str | None:
    """The fastest model on ``device`` by batch-1 p50 under onnxruntime's defaults, among ``qualified``."""
    measured = [m for m in device["models"] if m["name"] in qualified]
    if not measured:
        return None
    return min(measured, key=lambda m: m["latency_us"]["ort_defaults"]["p50"])["name"]


def table(devices: list[dict], qualified: list[str]) -> str:
    """Markdown: per device and model, p50 with the runtime's options and with ORT defaults; picks marked."""
    rows = []
    for device in devices:
        machine, chosen = device["machine"], pick(device, qualified)
        label = machine["name"] + (" (quick run)" if device["settings"]["quick"] else "")
        isa = [f for f in KEY_ISA if f in machine["isa"]]
        cpu = f"{machine['cpu']}, {machine['arch']}" + (f" ({' '.join(isa)})" if isa else "")
        for m in sorted(device["models"], key=lambda m: m["latency_us"]["ort_defaults"]["p50"]):
            mark = PICKED if m["name"] == chosen else ("" if m["name"] in qualified else "not qualified")
            rows.append(
                [
                    label,
                    cpu,
                    m["name"],
                    m["latency_us"]["runtime"]["p50"],
                    m["latency_us"]["ort_defaults"]["p50"],
                    f"{m['accuracy']:.2%}",
                    mark,
                ]
            )
            label = cpu = ""  # once per device
    headers = ["device", "CPU", "model", "p50 µs (runtime)", "p50 µs (ORT defaults)", "accuracy", ""]
    return tabulate(rows, headers, tablefmt="github", floatfmt=".1f")
