"""The generated C library on emulated Cortex-M cores (firmware.json) as a report section, beside TFLite Micro."""

from __future__ import annotations


def _weights(m: dict) -> str:
    """The weights' flash in the library, and which dense layers hold 4-bit palette indices instead of int8."""
    if "weight_bytes" not in m:
        return "-"
    coded = m.get("palette_layers") or []
    return f"{m['weight_bytes']:,}" + (f" (4-bit: {', '.join(coded)})" if coded else "")


def section(firmware: dict | None, mcu: dict | None) -> str:
    if not firmware:
        return ""
    if not firmware["models"]:
        return f"## Microcontrollers: generated C on emulated Cortex-M\n\nNot built: {firmware.get('skipped')}.\n\n"
    rows = [
        "| model | MACs | weights B as stored | core | library flash B | RAM B (arena + stack) | demo firmware B "
        "| instructions per image | per MAC | est. latency | bit-exact with TFLM |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    tflm = {m["name"]: m for m in (mcu or {}).get("models", [])}
    for m in firmware["models"]:
        for key, c in m["cores"].items():
            rows.append(
                f"| {m['name']} | {m['macs']:,} | {_weights(m)} | {key} | {c['library_flash_bytes']:,} | "
                f"{c['ram_bytes']:,} ({c['static_ram_bytes']:,} + {c['stack_bytes']}) | "
                f"{c['firmware_flash_bytes']:,} | "
                f"{c['instructions_per_image']:,} | {c['instructions_per_mac']:.2f} | "
                f"{c['est_ms_per_image']:.1f} ms at {c['clock_mhz']} MHz | {'yes' if c['bit_exact'] else 'NO'} "
                f"({c['images']:,} images) |"
            )
    emulated = "; ".join(
        f"{m['name']} {m['full_test']['test_accuracy'] * 100:.2f} % "
        f"({'bit-exact' if m['full_test']['bit_exact'] else 'NOT bit-exact'})"
        for m in firmware["models"]
    )
    first = firmware["models"][0]["full_test"]["core"]
    beside = "; ".join(
        f"{n}: model {t['flash_bytes']:,} B + interpreter, arena {t['arena_bytes']:,} B" for n, t in tflm.items()
    )
    exact = all(m["host_bit_exact"] for m in firmware["models"])
    return f"""## Microcontrollers: generated C on emulated Cortex-M

Every int8 TFLite model as a plain C99 library (`pipeline/formats/codegen.py`): its int8 outputs
{"equal" if exact else "DO NOT equal"} TensorFlow Lite Micro's on every validation and test image on this host
({firmware["models"][0]["host_images"]:,} images per model). Built with gcc-arm-none-eabi for each core and run
in QEMU (`-icount shift=0`: the board timer counts instructions, the same on every host). Flash is the
library's text, rodata and data (model and kernels) as linked into the demo firmware, read from the
link map (a kernel the model does not call is dropped); a dense layer whose int8 weights take at most
16 values (a clustered model's) is stored as 4-bit indices and a 1 KB table of decoded pairs, the
same integers. RAM is the static arena plus the peak stack of one inference, measured by painting
the stack. The Cortex-M4F and M7 run the kernels' DSP path (`SMLAD`, two 16-bit multiply-accumulates
an instruction), the M3 the plain C one. Latency is instructions at the
stated clock, one per cycle: a lower bound. The whole test set on the emulated {first}: {emulated}.

{chr(10).join(rows)}

TFLite Micro, for comparison (host interpreter, `mcu.json`): {beside or "not measured"}; its
interpreter adds roughly 16-22 KB of flash on Cortex-M (TFLite Micro's documentation).

"""
