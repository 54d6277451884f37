"""Stage, firmware: every int8 TFLite model as generated C, checked against TFLite Micro, built and run on Cortex-M.

    python -m pipeline.firmware        # make firmware; part of make all

For each int8 TFLite artifact: its C library (``formats/codegen.py``) in ``firmware/<model>/lib/``;
the library built with this host's cc and run on every validation and test image, its int8
outputs compared with TFLite Micro's interpreter image by image; per core the demo firmware
(``firmware/<model>/<core>.elf``): the library's flash and static RAM inside it (from the link
map), and a QEMU run on ``firmware.images`` test images: instructions per image, peak stack,
outputs against TFLite Micro's (``on_core``, which the sweep uses too); and the whole test set on
the first core, for the accuracy on an emulated core. ``pick`` is the deploy stage's rule: the
least library flash + RAM within the bar. Without the cross toolchain or QEMU the stage says in one
line what to install and succeeds, writing a ``firmware.json`` that says so (the deploy stage then
has the TFLite Micro path only).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline import artifacts, mcu
from pipeline import config as config_mod
from pipeline import data as data_mod
from pipeline.core import rules, stage
from pipeline.formats import codegen, int8_layers, tflite_io
from pipeline.measure import cortex_m
from runtime.metadata import mnist_to_float

log = logging.getLogger("pipeline.firmware")
OUTPUT = "firmware.json"
FOLDER = "firmware"
SKIPPED = (
    "[firmware] skipped: building for Cortex-M needs {missing} ({install}); after installing them, "
    "`rm {output} && make all`"
)


def footprint(m: dict) -> int:
    """What the rule minimises: the library's flash plus its RAM (static + peak stack) on the reference core."""
    ref = m["cores"][next(iter(m["cores"]))]
    return ref["library_flash_bytes"] + ref["ram_bytes"]


def pick(models: list[dict], baseline_val_accuracy: float, max_drop_pp: float) -> tuple[str, bool]:
    """(name, fallback): the least footprint among the models within the bar on validation, else the most accurate."""
    ok = [m for m in models if rules.within_bar(baseline_val_accuracy, m["val_accuracy"], max_drop_pp)]
    if ok:
        return min(ok, key=lambda m: (footprint(m), m["name"]))["name"], False
    return max(models, key=lambda m: m["val_accuracy"])["name"], True


README = """# {name} on a microcontroller

## The generated C library (`lib/`): the first path

`lib/` is the int8 model as plain C99, generated from `{name}` (pipeline/formats/codegen.py): `mnist_model.c`
holds the `const` weights, biases and requantisation constants (flash) and one static arena of
{arena} bytes, `nn_int8.c` the integer kernels. No malloc, no float, no library call. Its int8 outputs
are TensorFlow Lite Micro's, bit for bit, on every validation and test image. Copy the four files into
your firmware and build them with any C99 compiler; where the compiler defines `__ARM_FEATURE_SIMD32`
(GCC or Clang for a Cortex-M4, M7 or M33) the kernels use the DSP instructions (`SMLAD`), with the same
integers, and `-DNN_PLAIN_C` turns that off:

```c
#include "mnist_model.h"

int8_t probabilities[MNIST_CLASSES];                   /* probability = (q + 128) / 256 */
int digit = mnist_classify(pixels, probabilities);     /* pixels: 784 bytes, 0 = paper, 255 = ink, row by row */
```

| core | library flash | RAM (arena + stack) | demo firmware | instructions per image | per MAC | latency, estimated |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

The `*.elf` files are that demo firmware (`classify_images.c`, the project's start-up and linker script): run
one in QEMU in a folder holding `images.bin` (N x 784 bytes, MNIST pixels) and it writes `outputs.bin`
(N x 10 int8, in order) and prints N, the instructions per image and the peak stack:

```sh
qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native -icount shift=0 \\
    -kernel cortex-m4f.elf
```

The latency column is instructions at the stated clock, one instruction per cycle: a lower bound
(loads and taken branches take more on a Cortex-M).

"""


def readme(t: dict) -> str:
    """The generated-C part of mcu/README.md, for the deploy stage's pick ``t``."""
    rows = "\n".join(
        f"| {k} | {c['library_flash_bytes']:,} B | {c['ram_bytes']:,} B ({c['static_ram_bytes']:,} + "
        f"{c['stack_bytes']}) | {c['firmware_flash_bytes']:,} B | {c['instructions_per_image']:,} | "
        f"{c['instructions_per_mac']:.2f} | {c['est_ms_per_image']:.1f} ms at {c['clock_mhz']} MHz |"
        for k, c in t["cores"].items()
    )
    first = next(iter(t["cores"].values()))
    return README.format(name=t["pick"], arena=first["static_ram_bytes"], rows=rows)


def _pixels(x: np.ndarray) -> np.ndarray:
    return np.rint(x[..., 0] * 255).astype(np.uint8)


def measure(cfg: config_mod.Config, a: artifacts.Artifact, split: dict, scratch: Path) -> dict:
    """One model: its library, exactness on this host against TFLite Micro, and per core its sizes and QEMU run."""
    path, folder = cfg.artifacts / a.name, cfg.artifacts / FOLDER / a.stem
    layers = int8_layers.read(path)
    codegen.generate(path, folder / "lib")
    pixels = np.concatenate([split["val"], split["test"]])
    encoded = tflite_io.spec(path).encode(mnist_to_float(pixels))
    tflm = mcu.outputs(mcu.interpreter(path.read_bytes(), 1 << 20, encoded[:1]), encoded)[0].reshape(len(pixels), -1)
    host = cortex_m.host_outputs(folder / "lib", pixels, scratch / a.stem / "host")
    n_val = len(split["val"])
    digits = host.argmax(axis=1)
    found = {
        "name": a.name,
        "macs": int8_layers.macs(layers),
        "weight_bytes": sum(codegen.weight_bytes(layer) for layer in layers if layer.weights is not None),
        "int8_weight_bytes": sum(layer.weights.data.size for layer in layers if layer.weights is not None),
        "palette_layers": [layer.name for layer in layers if codegen.palette_coded(layer)],
        "host_bit_exact": bool(np.array_equal(host, tflm)),
        "host_images": len(pixels),
        "val_accuracy": float((digits[:n_val] == split["y_val"]).mean()),
        "test_accuracy": float((digits[n_val:] == split["y_test"]).mean()),
        "cores": {},
    }
    if not found["host_bit_exact"]:
        raise stage.PipelineError(f"{a.name}: the generated C differs from TFLite Micro on this host")
    sample = split["test"][: cfg.firmware.images]
    for key in cfg.firmware.cores:
        found["cores"][key] = on_core(key, folder / "lib", folder / f"{key}.elf", sample, tflm=tflm[n_val:],
                                      macs=found["macs"], scratch=scratch / a.stem / key,
                                      timeout=cfg.firmware.timeout)  # fmt: skip
        if not found["cores"][key]["bit_exact"]:
            raise stage.PipelineError(f"{a.name}: the {key} firmware's outputs differ from TFLite Micro's")
    found["full_test"] = full_test(cfg, a, split, tflm[n_val:], scratch)
    return found


def on_core(key: str, lib: Path, elf: Path, pixels: np.ndarray, *, tflm: np.ndarray, macs: int, scratch: Path,
            timeout: float) -> dict:  # fmt: skip
    """``lib`` as the demo firmware for core ``key`` -> ``elf``, run in QEMU on uint8 ``pixels``: sizes, peak
    stack, instructions, and whether its outputs are ``tflm``'s (TFLite Micro's on the same images)."""
    core = cortex_m.CORES[key]
    built = cortex_m.build(core, lib, elf)
    ran = cortex_m.run(core, elf, pixels, scratch, timeout)
    exact = bool(np.array_equal(ran["outputs"], tflm[: len(pixels)]))
    log.info("%s on %s: %s; outputs %s TFLite Micro's", lib.parent.name, key, ran["summary"], "=" if exact else "!=")
    return {
        "library_flash_bytes": built["library_flash_bytes"],
        "static_ram_bytes": built["library_static_ram_bytes"],
        "stack_bytes": ran["stack_bytes"],
        "ram_bytes": built["library_static_ram_bytes"] + ran["stack_bytes"],
        "firmware_flash_bytes": built["flash_bytes"],
        "instructions_per_image": ran["instructions"],
        "instructions_per_mac": round(ran["instructions"] / macs, 3),
        "est_ms_per_image": round(ran["instructions"] / (core.clock_mhz * 1e3), 2),
        "clock_mhz": core.clock_mhz,
        "images": len(pixels),
        "bit_exact": exact,
    }


def full_test(cfg: config_mod.Config, a: artifacts.Artifact, split: dict, tflm: np.ndarray, scratch: Path) -> dict:
    """The model's firmware on every test image on the first core: accuracy on the emulated core."""
    key = cfg.firmware.cores[0]
    elf = cfg.artifacts / FOLDER / a.stem / f"{key}.elf"
    ran = cortex_m.run(cortex_m.CORES[key], elf, split["test"], scratch / a.stem / "full", cfg.firmware.timeout)
    found = {
        "core": key,
        "images": len(split["test"]),
        "test_accuracy": float((ran["outputs"].argmax(axis=1) == split["y_test"]).mean()),
        "bit_exact": bool(np.array_equal(ran["outputs"], tflm)),
    }
    log.info("%s on %s, whole test set: %.2f %%, outputs %s TFLite Micro's",
             a.name, key, 100 * found["test_accuracy"], "=" if found["bit_exact"] else "!=")  # fmt: skip
    return found


def run(cfg: config_mod.Config) -> Path:
    started = time.time()
    missing = cortex_m.missing()
    output = cfg.artifacts / OUTPUT
    if missing:  # written all the same, so that `make all` does not retry (and rerun what follows) every time
        print(SKIPPED.format(missing=", ".join(missing), install=cortex_m.INSTALL, output=output), flush=True)
        stage.write_json(output, {"skipped": f"missing {', '.join(missing)}", "cores": [], "models": []})
        return output
    s = data_mod.splits(cfg)
    split = {"val": _pixels(s["x_val"]), "test": _pixels(s["x_test"]), "y_val": s["y_val"], "y_test": s["y_test"]}
    models = artifacts.select("int8.tflite")
    with tempfile.TemporaryDirectory(prefix="firmware-") as scratch:
        measured = []
        for a in models:
            try:
                measured.append(measure(cfg, a, split, Path(scratch)))
            except int8_layers.UnsupportedModel as e:
                log.warning("not generated: %s", e)
            except RuntimeError as e:
                raise stage.PipelineError(str(e)) from None
        if not measured:
            raise stage.PipelineError("no int8 TFLite model could be generated as C")
    cores = [
        {"key": k, "name": cortex_m.CORES[k].name, "machine": cortex_m.CORES[k].machine} for k in cfg.firmware.cores
    ]
    stage.write_json(output, {"cores": cores, "models": measured})
    stage.record(cfg, "firmware", [output], [cfg.artifacts / a.name for a in models], started)
    return output


def main() -> None:
    stage.main("firmware", run)


if __name__ == "__main__":
    main()
