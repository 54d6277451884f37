"""What machine this is, in the terms that decide which onnxruntime kernels run: CPU, ISA flags, OS.

    from runtime.machine import describe
    describe("pi5")   # {"name", "cpu", "board", "arch", "cores", "isa", "os", "python", "versions"}

Read from ``/proc/cpuinfo`` and the device tree where they exist (Linux), from ``platform``
otherwise. Standard library only: ``runtime.bench`` and the pipeline's benchmark both record it.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

# CPU features that decide which onnxruntime kernels run: x86 vector and int8 dot-product
# extensions, ARM's SIMD, dot-product, int8 matrix and scalable vector extensions.
ISA_FLAGS = (
    *("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"),
    *("avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),
    *("asimd", "asimdhp", "asimddp", "asimdrdm", "i8mm", "bf16", "sve", "sve2", "sme"),
)
# /proc/cpuinfo "CPU part" of ARM Ltd cores (implementer 0x41) found in boards and phones.
# fmt: off
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2",
}
# fmt: on


def describe(name: str | None) -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    fields = dict(re.findall(r"^([^\t:\n]+?)\s*:\s*(.*)$", cpuinfo, re.MULTILINE))  # the last CPU's win
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    parts = dict.fromkeys(re.findall(r"^CPU part\s*:\s*(\S+)", cpuinfo, re.MULTILINE))  # big.LITTLE: several
    arm = (
        " + ".join(ARM_PARTS.get(p, f"ARM part {p}") for p in parts)
        if fields.get("CPU implementer") == "0x41"
        else None
    )
    board = _read("/proc/device-tree/model").strip("\0\n ") or fields.get("Model") or None
    return {
        "name": name or platform.node() or "unnamed",
        "cpu": fields.get("model name") or arm or platform.processor() or platform.machine(),
        "board": board,
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {n: _version(n) for n in ("onnxruntime", "numpy", "pillow")},
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
