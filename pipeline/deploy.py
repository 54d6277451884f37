"""Stage 7, deploy: pick the model for each target -> ``deploy.json`` and ``model.onnx``.

    python -m pipeline.deploy

Decisions use the validation split; the test set is only reported. The deployed ONNX model
follows one rule, stated in ``deploy.json`` and the report: among the ONNX artifacts whose
validation accuracy is within ``deploy.max_accuracy_drop`` percentage points of the
baseline's and whose digits agree on every CPU tier of ``parity.json``, the fastest at batch 1
under onnxruntime's *default* options (how any onnxruntime host loads it; p50s within
``deploy.latency_tie`` of the fastest are a tie, broken by gzip size); if none qualifies, the
most accurate ONNX artifact on validation.
The same rule picks per target (onnxruntime with the runtime's options, LiteRT); for
microcontrollers (TFLite Micro, from ``mcu.json``) the smallest flash + arena among the int8
models within the bar on validation, written as firmware files to ``mcu/``. The deployed
model is copied to ``model.onnx`` with its measured accuracies merged into its
``metadata_props`` and a summary in its ``doc_string``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pipeline import artifacts
from pipeline import config as config_mod
from pipeline.core import rules, schemas, stage
from pipeline.formats import onnx_io

log = logging.getLogger("pipeline.deploy")

BASELINE_ONNX = artifacts.reference("onnx")  # the speed reference on onnxruntime
BASELINE_TFLITE = artifacts.reference("tflite")  # the size reference (gzip) and the speed reference on LiteRT
RULE = (
    "among the {fmt} artifacts whose validation accuracy is within {drop:g} pp of {baseline}'s, the fastest at "
    "batch 1 ({speed}; p50s within {tie:.0%} of the fastest are a tie, broken by gzip size); if none qualifies, "
    "the most accurate on validation"
)
# Per target: (name, artifact format, latency field of benchmark.json, how it is timed)
TARGETS = (
    ("onnxruntime, default options", "onnx", "latency_us_ort_defaults", "p50 under onnxruntime's default options"),
    ("onnxruntime, runtime options", "onnx", "latency_us", "p50 with the runtime's session options"),
    ("LiteRT", "tflite", "latency_us", "p50 on LiteRT"),
)
DEPLOYED = onnx_io.DEPLOYED
PARITY_RULE = ", among those whose digits agree on every CPU tier of parity.json"
DEPLOYED_TARGET = TARGETS[0][0]  # model.onnx must be fast wherever it is loaded
MCU_TARGET = "TFLite Micro"
MCU_RULE = (
    "among the int8 TFLite artifacts whose validation accuracy in TFLite Micro is within {drop:g} pp of {baseline}'s, "
    "the smallest flash + arena; if none qualifies, the most accurate on validation"
)
# Checked and reported, not enforced: (comparison key, op, the config `deploy` field holding the limit,
# what it means with {limit} filled in). Test-set figures.
GOALS = (
    ("accuracy_delta_pp", ">=", "goal_accuracy_delta_pp", "test accuracy >= {baseline} {limit:+g} pp"),
    ("gzip_x_smaller_than_baseline_fp32_tflite", ">=", "goal_gzip_x", "gzip size >= {limit:g}x smaller than {tflite}"),
    ("p50_vs_baseline_fp32_onnx", "<=", "goal_p50_runtime", "batch-1 p50 <= {limit:g}x {onnx}'s (runtime options)"),
    ("p50_defaults_vs_baseline_fp32_onnx", "<=", "goal_p50_defaults",
     "batch-1 p50 <= {limit:g}x {onnx}'s (both ORT defaults)"),
    ("p50_vs_baseline_fp32_tflite", "<=", "goal_p50_litert", "batch-1 p50 <= {limit:g}x {tflite}'s (LiteRT)"),
)  # fmt: skip
MCU_GOALS = (
    ("mcu_flash_kb", "<=", "goal_mcu_flash_kb", "MCU pick: flash <= {limit:g} KB"),
    ("mcu_arena_kb", "<=", "goal_mcu_arena_kb", "MCU pick: arena <= {limit:g} KB"),
    ("mcu_accuracy_delta_pp", ">=", "goal_accuracy_delta_pp",
     "MCU pick: test accuracy >= {baseline} {limit:+g} pp (in TFLite Micro)"),
)  # fmt: skip
p50 = rules.p50


def checked(goals: tuple, values: dict, d: config_mod.DeployConfig) -> list[dict]:
    """Each goal of ``goals``, its limit from config ``deploy``, whether ``values`` meets it (None: not measured)."""
    found = []
    for key, op, field, text in goals:
        limit, v = getattr(d, field), values[key]
        met = None if v is None else bool(v >= limit - rules.EPS if op == ">=" else v <= limit + rules.EPS)
        names = {"baseline": artifacts.BASELINE, "onnx": BASELINE_ONNX, "tflite": BASELINE_TFLITE}
        found.append(
            {"target": text.format(limit=limit, **names), "key": key, "op": op, "limit": limit, "value": v, "met": met}
        )
    return found


def choose(
    rows: list[dict], baseline_accuracy: float, max_drop_pp: float, tie: float, *, speed: str, key: str = "val_accuracy"
) -> tuple[str, list[str], bool]:
    """(name, qualified names fastest first, fallback) among ``rows``: the rule in RULE, on ``key`` accuracy."""
    fastest = lambda a: (p50(a, speed) if p50(a, speed) is not None else float("inf"), a["gzip_bytes"], a["name"])  # noqa: E731
    ok = sorted((a for a in rows if rules.within_bar(baseline_accuracy, a[key], max_drop_pp)), key=fastest)
    if ok:
        tied = [a for a in ok if fastest(a)[0] <= fastest(ok[0])[0] * (1 + tie)]
        return min(tied, key=lambda a: (a["gzip_bytes"], *fastest(a)))["name"], [a["name"] for a in ok], False
    return min(rows, key=lambda a: (-a[key], *fastest(a)))["name"], [], True


def pick(
    bench: dict,
    cfg: config_mod.Config,
    fmt: str,
    speed: str,
    *,
    key: str = "val_accuracy",
    exclude: frozenset = frozenset(),
) -> dict:
    """The rule applied to the artifacts of format ``fmt``, less ``exclude`` (digits that differ between CPUs)."""
    rows = [a for a in bench["artifacts"] if a["format"] == fmt and a["name"] not in exclude]
    if not rows:
        raise stage.PipelineError(f"benchmark.json lists no {fmt} artifact: run `make bench`")
    base = next(a for a in bench["artifacts"] if a["name"] == bench["baseline"])
    d = cfg.deploy
    name, qualified, fallback = choose(rows, base[key], d.max_accuracy_drop, d.latency_tie, speed=speed, key=key)
    return {"pick": name, "qualified": qualified, "fallback": fallback}


def compare(by_name: dict[str, dict], deployed: str, baseline: str, limits: config_mod.DeployConfig) -> tuple:
    """The deployed model against the baselines (test-set figures), and the GOALS checked (None: not measured)."""
    d, onnx_ref, tflite_ref = by_name[deployed], by_name.get(BASELINE_ONNX, {}), by_name.get(BASELINE_TFLITE, {})
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    c = {
        "accuracy_delta_pp": round((d["accuracy"] - by_name[baseline]["accuracy"]) * 100, 6),
        "val_accuracy_delta_pp": round((d["val_accuracy"] - by_name[baseline]["val_accuracy"]) * 100, 6),
        "gzip_x_smaller_than_baseline_fp32_tflite": ratio(tflite_ref.get("gzip_bytes"), d["gzip_bytes"]),
        "p50_vs_baseline_fp32_onnx": ratio(p50(d), p50(onnx_ref)),
        "p50_defaults_vs_baseline_fp32_onnx": ratio(
            p50(d, "latency_us_ort_defaults"), p50(onnx_ref, "latency_us_ort_defaults")
        ),
        "p50_vs_baseline_fp32_tflite": ratio(p50(d), p50(tflite_ref)),
    }
    return c, checked(GOALS, c, limits)


def mcu_target(cfg: config_mod.Config, base: dict, measured: dict) -> dict:
    """The microcontroller pick from mcu.json: smallest flash + arena within the bar on validation."""
    from pipeline import mcu

    models, drop = measured["models"], cfg.deploy.max_accuracy_drop
    name, fallback = mcu.pick(models, base["val_accuracy"], drop)
    footprint = lambda m: m["flash_bytes"] + m["arena_bytes"]  # noqa: E731
    ok = [m for m in models if rules.within_bar(base["val_accuracy"], m["val_accuracy"], drop)]
    by_test = [m | {"val_accuracy": m["test_accuracy"]} for m in models]
    m = next(x for x in models if x["name"] == name)
    figures = {k: m[k] for k in ("flash_bytes", "arena_bytes", "val_accuracy", "agreement_with_litert", "ops")}
    return {
        "target": MCU_TARGET,
        "format": "tflite-micro",
        "speed": "ms_per_image",
        "rule": MCU_RULE.format(drop=drop, baseline=base["name"]),
        "pick": name,
        "qualified": [x["name"] for x in sorted(ok, key=footprint)],
        "fallback": fallback,
        "test_pick": mcu.pick(by_test, base["accuracy"], drop)[0],
        "figures": figures | {"accuracy": m["test_accuracy"], "ms_per_image": m["ms_per_image"]},
        "interpreter": measured.get("interpreter", ""),
    }


GENERATED_TARGET = "Cortex-M, generated C"
GENERATED_RULE = (
    "among the int8 TFLite artifacts whose generated C library (bit-exact with TFLite Micro) is within {drop:g} pp "
    "of {baseline}'s on validation, the least library flash + RAM (static + peak stack) on {core}; if none "
    "qualifies, the most accurate on validation"
)
GENERATED_GOALS = (
    ("lib_flash_kb", "<=", "goal_lib_flash_kb", "generated C: inference library flash <= {limit:g} KB"),
    ("lib_ram_kb", "<=", "goal_lib_ram_kb", "generated C: RAM incl. stack <= {limit:g} KB"),
    ("lib_accuracy_delta_pp", ">=", "goal_accuracy_delta_pp",
     "generated C: test accuracy on the emulated core >= {baseline} {limit:+g} pp"),
    ("instructions_per_mac", "<=", "goal_instructions_per_mac", "generated C: instructions per MAC <= {limit:g} "
     "(first core)"),
)  # fmt: skip


FRONTIER_GOALS = (
    ("frontier_download_x", ">=", "goal_download_x",
     "smallest ONNX/TFLite file within the bar: gzip >= {limit:g}x smaller than {tflite}"),
    ("frontier_lib_flash_kb", "<=", "goal_frontier_lib_flash_kb", "smallest generated C library within the bar: "
     "flash <= "
     "{limit:g} KB"),
)  # fmt: skip


def frontier(bench: dict, base: dict, firmware_measured: dict | None, d: config_mod.DeployConfig) -> dict:
    """The smallest artifacts within the bar on validation, whichever a target picks: the ONNX or TFLite file of
    the least gzip, and the generated C library of the least flash on the first core (None: none qualifies)."""
    within = lambda m: rules.within_bar(base["val_accuracy"], m["val_accuracy"], d.max_accuracy_drop)  # noqa: E731
    files = [a for a in bench["artifacts"] if a["format"] in ("onnx", "tflite") and within(a)]
    libraries = [m for m in (firmware_measured or {}).get("models", []) if within(m)]
    flash = lambda m: next(iter(m["cores"].values()))["library_flash_bytes"]  # noqa: E731
    reference = next((a["gzip_bytes"] for a in bench["artifacts"] if a["name"] == BASELINE_TFLITE), None)
    found = {"download": None, "library": None}
    if files and reference:
        f = min(files, key=lambda a: (a["gzip_bytes"], a["name"]))
        found["download"] = {
            "name": f["name"],
            "gzip_bytes": f["gzip_bytes"],
            "x_smaller": reference / f["gzip_bytes"],
            "val_accuracy": f["val_accuracy"],
            "accuracy": f["accuracy"],
            "bits_per_weight": (f.get("palette") or {}).get("bits_per_weight"),
            "params": f.get("params"),
            "gzip_goal_bytes": reference / d.goal_download_x,
        }
    if libraries:
        m = min(libraries, key=lambda m: (flash(m), m["name"]))
        found["library"] = {
            "name": m["name"],
            "library_flash_bytes": flash(m),
            "weight_bytes": m["weight_bytes"],
            "int8_weight_bytes": m["int8_weight_bytes"],
            "val_accuracy": m["val_accuracy"],
            "accuracy": m["full_test"]["test_accuracy"],
        }
    values = {
        "frontier_download_x": found["download"]["x_smaller"] if found["download"] else None,
        "frontier_lib_flash_kb": found["library"]["library_flash_bytes"] / 1000 if found["library"] else None,
    }
    return found | {"goals": checked(FRONTIER_GOALS, values, d)}


def generated_target(cfg: config_mod.Config, base: dict, measured: dict) -> dict:
    """The generated-C pick from firmware.json: least library flash + RAM within the bar on validation."""
    from pipeline import firmware

    models, drop = measured["models"], cfg.deploy.max_accuracy_drop
    name, fallback = firmware.pick(models, base["val_accuracy"], drop)
    by_test = [m | {"val_accuracy": m["test_accuracy"]} for m in models]
    ok = [m for m in models if rules.within_bar(base["val_accuracy"], m["val_accuracy"], drop)]
    m = next(x for x in models if x["name"] == name)
    core = next(iter(m["cores"]))
    whole = m["full_test"]
    return {
        "target": GENERATED_TARGET,
        "format": "c99",
        "speed": "instructions_per_image",
        "rule": GENERATED_RULE.format(drop=drop, baseline=base["name"], core=core),
        "pick": name,
        "qualified": [x["name"] for x in sorted(ok, key=firmware.footprint)],
        "fallback": fallback,
        "test_pick": firmware.pick(by_test, base["accuracy"], drop)[0],
        "figures": {"val_accuracy": m["val_accuracy"], "accuracy": m["test_accuracy"], "macs": m["macs"]},
        "cores": m["cores"],
        "full_test": whole,
    }


def generated_values(t: dict, base: dict) -> dict:
    first = next(iter(t["cores"].values()))
    accuracy = t["full_test"]["test_accuracy"]
    return {
        "lib_flash_kb": first["library_flash_bytes"] / 1000,
        "lib_ram_kb": first["ram_bytes"] / 1000,
        "lib_accuracy_delta_pp": round((accuracy - base["accuracy"]) * 100, 6),
        "instructions_per_mac": first["instructions_per_mac"],
    }


def mcu_goals(t: dict, base: dict, d: config_mod.DeployConfig) -> list[dict]:
    f = t["figures"]
    values = {
        "mcu_flash_kb": f["flash_bytes"] / 1000,
        "mcu_arena_kb": f["arena_bytes"] / 1000,
        "mcu_accuracy_delta_pp": round((f["accuracy"] - base["accuracy"]) * 100, 6),
    }
    return checked(MCU_GOALS, values, d)


def doc_string(a: dict, baseline: dict) -> str:
    """The summary a model viewer (Netron, onnx.load) shows: what the model is and how good."""
    return (
        f"mnist-edge digit classifier, deployed: {a['name']} ({a['precision']}, made from {a['parent']}; "
        f"lineage {' <- '.join(artifacts.lineage(a['name']))}). Input: 28x28 MNIST-normalised images "
        f"(see metadata_props 'preprocessing'). Validation accuracy {a['val_accuracy']:.2%}, test accuracy "
        f"{a['accuracy']:.2%} (baseline {baseline['accuracy']:.2%}). Digits 0-9 only."
    )


def unstable(parity: dict | None) -> frozenset:
    """The ONNX artifacts whose digits differ between the CPU tiers of parity.json (none without it)."""
    return frozenset(a["name"] for a in (parity or {}).get("artifacts", []) if not a["agree"])


def decide(
    bench: dict,
    cfg: config_mod.Config,
    mcu_measured: dict | None = None,
    parity: dict | None = None,
    firmware_measured: dict | None = None,
) -> dict:
    """Every target's pick, the deployed model, and how it compares: the content of deploy.json.
    ONNX targets pick only among artifacts whose digits agree on every CPU tier of ``parity``."""
    by_name = {a["name"]: a for a in bench["artifacts"]}
    base = bench["baseline"]
    if base not in by_name or "val_accuracy" not in by_name[base]:
        raise stage.PipelineError(f"benchmark.json lacks {base} or validation accuracies: rerun `make bench`")
    d = cfg.deploy
    targets = []
    exclude = unstable(parity)
    for target, fmt, speed, timed in TARGETS:
        chosen = pick(bench, cfg, fmt, speed, exclude=exclude)
        rule = RULE.format(fmt=fmt.upper(), drop=d.max_accuracy_drop, baseline=base, tie=d.latency_tie, speed=timed)
        rule += PARITY_RULE if fmt == "onnx" and parity else ""
        by_test = pick(bench, cfg, fmt, speed, key="accuracy", exclude=exclude)["pick"]
        targets.append({"target": target, "format": fmt, "speed": speed, "rule": rule, **chosen, "test_pick": by_test})
    deployed = targets[0]["pick"]
    comparison, goals = compare(by_name, deployed, base, d)
    if firmware_measured and firmware_measured.get("models"):
        targets.append(generated_target(cfg, by_name[base], firmware_measured))
        goals += checked(GENERATED_GOALS, generated_values(targets[-1], by_name[base]), d)
    if mcu_measured and mcu_measured.get("models"):
        targets.append(mcu_target(cfg, by_name[base], mcu_measured))
        goals += mcu_goals(targets[-1], by_name[base], d)
    smallest = frontier(bench, by_name[base], firmware_measured, d)
    goals += smallest.pop("goals")
    return {
        "deployed": deployed,
        "deployed_target": DEPLOYED_TARGET,
        "baseline": base,
        "max_accuracy_drop_pp": d.max_accuracy_drop,
        "latency_tie": d.latency_tie,
        "baseline_val_accuracy": by_name[base]["val_accuracy"],
        "targets": targets,
        "comparison": comparison,
        "frontier": smallest,
        "goals": goals,
        "parity": {
            "tiers": [t["key"] for t in (parity or {}).get("tiers", []) if t["status"] == "ran"],
            "excluded": sorted(exclude),
        },
    }


def write_deployed(source: Path, row: dict, baseline: dict, target: Path) -> None:
    """Copy the ONNX model ``source`` to ``target`` with its accuracies merged into its metadata_props."""
    import onnx

    if not source.is_file():
        raise stage.PipelineError(f"{source.name} is missing: run `make all`")
    model = onnx.load(str(source))
    props = {"test_accuracy": row["accuracy"], "val_accuracy": row["val_accuracy"], "deployed_from": row["name"]}
    onnx_io.save(onnx_io.set_metadata(model, props), target, doc=doc_string(row, baseline))


def write_firmware(a: Path, t: dict, generated: dict | None) -> None:
    """mcu/model_data.h, .cc (TFLite Micro) and README.md for the TFLM pick; with ``generated`` (the generated-C
    target), its library in mcu/lib/ and its firmware ELFs in mcu/, introduced first in the README."""
    from pipeline import firmware as firmware_stage
    from pipeline.formats import firmware

    intro = ""
    if generated is not None:
        stem = Path(generated["pick"]).stem
        source = a / firmware_stage.FOLDER / stem
        (a / "mcu" / "lib").mkdir(parents=True, exist_ok=True)
        for path in sorted((source / "lib").iterdir()):
            stage.write_bytes(a / "mcu" / "lib" / path.name, path.read_bytes())
        for elf in sorted(source.glob("*.elf")):
            stage.write_bytes(a / "mcu" / elf.name, elf.read_bytes())
        intro = firmware_stage.readme(generated)
    f = t["figures"]
    accuracy = {"validation": f["val_accuracy"], "test": f["accuracy"]}
    firmware.write(
        a / t["pick"], f["arena_bytes"], a / "mcu", model_name=t["pick"], ops=f["ops"], accuracy=accuracy, intro=intro
    )


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    a = cfg.artifacts
    path = a / "benchmark.json"
    if not path.is_file():
        raise stage.PipelineError(f"{path} is missing: run `make bench` first")
    bench = schemas.check(json.loads(path.read_text()), "benchmark", path)
    measured = json.loads((a / "mcu.json").read_text()) if (a / "mcu.json").is_file() else None
    parity_path = a / "parity.json"
    parity = (
        schemas.check(json.loads(parity_path.read_text()), "parity", parity_path) if parity_path.is_file() else None
    )
    firmware_path = a / "firmware.json"
    firmware_measured = json.loads(firmware_path.read_text()) if firmware_path.is_file() else None
    decision = decide(bench, cfg, measured, parity, firmware_measured)
    by_name = {x["name"]: x for x in bench["artifacts"]}
    write_deployed(a / decision["deployed"], by_name[decision["deployed"]], by_name[bench["baseline"]], a / DEPLOYED)
    generated = next((t for t in decision["targets"] if t["target"] == GENERATED_TARGET), None)
    for t in decision["targets"]:
        if t["target"] == MCU_TARGET:
            write_firmware(a, t, generated)
    output = a / "deploy.json"
    stage.write_json(output, decision)
    stage.record(cfg, "deploy", [output, a / DEPLOYED], [path, a / decision["deployed"]], started)
    for t in decision["targets"]:
        log.info("%s: %s%s", t["target"], t["pick"], " (fallback: none qualified)" if t["fallback"] else "")
    log.info("deployed %s as model.onnx", decision["deployed"])
    return output


def main() -> None:
    stage.main("deploy", run)


if __name__ == "__main__":
    main()
