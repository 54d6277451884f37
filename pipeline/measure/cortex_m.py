"""Generated C libraries built for Cortex-M cores and run in QEMU; and the same program on this host.

    sizes = cortex_m.build(CORES["cortex-m3"], lib, elf)            # the demo program as firmware for the board:
                                                                    # its flash and RAM, and the library's share
    found = cortex_m.run(CORES["cortex-m3"], elf, pixels, folder)   # {"outputs", "instructions", "stack_bytes"}

Each core is one of the MPS2 boards QEMU 7.2 emulates, with the project's own start-up and linker
script (``formats/c/cortex_m``); the toolchain is Debian's gcc-arm-none-eabi with newlib (nano and
semihosting). The firmware reads images.bin and writes outputs.bin in its working folder through
semihosting. ``-icount shift=0`` makes one instruction one nanosecond of virtual time, so the
board timer counts instructions, the same on every host; they are not cycles (a Cortex-M4 takes
more than one cycle for loads and branches), so the latency at a clock is a lower bound.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.formats import codegen

C = codegen.KERNELS
BOARD = C / "cortex_m"
INSTALL = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
STACK_PAINT = 4096  # bytes painted below the caller to find the classification's peak stack
SUMMARY = re.compile(r"classified (?P<images>\d+) images, (?P<instructions>\d+) instructions per image, "
                     r"(?P<stack>\d+) bytes of stack")  # fmt: skip


@dataclass(frozen=True)
class Core:
    key: str
    name: str
    machine: str  # qemu-system-arm -M
    flags: tuple[str, ...]  # gcc: CPU, instruction set, float ABI
    clock_mhz: int  # a typical part's clock, for the latency estimate


CORES = {
    c.key: c
    for c in (
        Core("cortex-m4f", "Cortex-M4F (DSP, FPU)", "mps2-an386",
             ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), 80),
        Core("cortex-m3", "Cortex-M3 (no DSP, no FPU)", "mps2-an385",
             ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), 72),
        Core("cortex-m7", "Cortex-M7 (DSP, FPU)", "mps2-an500",
             ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), 216),
    )
}  # fmt: skip
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")


class ToolMissing(RuntimeError):
    """The cross toolchain or QEMU is not installed: one line saying what to install."""


def missing() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n  " + "\n  ".join(tail))
    return done


def _sizes(files: list[Path]) -> tuple[int, int, int]:
    """(text incl. rodata, data, bss) summed over object or ELF files, as arm-none-eabi-size counts them."""
    out = _run(["arm-none-eabi-size", "--format=berkeley", *map(str, files)], "arm-none-eabi-size").stdout
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return tuple(sum(int(r[i]) for r in rows) for i in range(3))


def _library_share(link_map: str, objects: set[str]) -> tuple[int, int]:
    """(flash, static RAM) of the input sections from ``objects`` that the link kept (GNU ld's map): what the
    library costs inside a firmware, unused functions dropped (-ffunction-sections, --gc-sections)."""
    kept = link_map.split("Linker script and memory map", 1)[-1]  # not the discarded sections listed before
    section, pending, flash, ram = "", False, 0, 0
    for line in kept.splitlines():
        if (top := re.match(r"(\.\S+)", line)) is not None:  # an output section: .text, .data, .bss ...
            section, pending = top[1], False
            continue
        if re.fullmatch(r" (\.\S+|COMMON)", line):  # an input section whose address and size follow on the next line
            pending = True
            continue
        found = re.fullmatch(r" (\.\S+|COMMON)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)", line)
        if found and (found[1] or pending) and Path(found[3]).name in objects:
            size = int(found[2], 16)
            flash += 0 if section == ".bss" else size  # .data is copied from flash at start-up
            ram += size if section in (".data", ".bss") else 0
        pending = False
    return flash, ram


def build(core: Core, lib: Path, elf: Path) -> dict:
    """The demo program (classify_images.c) with ``lib`` as firmware for ``core``'s board -> ``elf``: the whole
    firmware's flash and static RAM, and the inference library's share of them (model and kernels)."""
    elf.parent.mkdir(parents=True, exist_ok=True)
    defines = ["-DNN_COUNTER=board_instructions", f"-DNN_STACK={STACK_PAINT}"]
    specs = ["--specs=nano.specs", "--specs=rdimon.specs", "-lrdimon_nano", "-Wl,--gc-sections"]
    with tempfile.TemporaryDirectory(prefix="cortex-m-") as scratch:
        objects = []
        for source in sorted(lib.glob("*.c")):
            obj = Path(scratch) / f"{source.stem}.{core.key}.o"
            _run(["arm-none-eabi-gcc", *core.flags, *CFLAGS, "-I", str(lib), "-c", str(source), "-o", str(obj)],
                 f"compiling {source.name} for {core.key}")  # fmt: skip
            objects.append(obj)
        link_map = Path(scratch) / "firmware.map"
        sources = [C / "classify_images.c", BOARD / "startup.c"]
        _run(["arm-none-eabi-gcc", *core.flags, *CFLAGS, *defines, "-I", str(lib), *map(str, sources),
              *map(str, objects), "-T", str(BOARD / "mps2.ld"), *specs, f"-Wl,-Map={link_map}", "-o", str(elf)],
             f"linking the {core.key} firmware")  # fmt: skip
        flash, ram = _library_share(link_map.read_text(), {o.name for o in objects})
    text, data, bss = _sizes([elf])
    return {"flash_bytes": text + data, "static_ram_bytes": data + bss, "library_flash_bytes": flash,
            "library_static_ram_bytes": ram}  # fmt: skip


def run(core: Core, elf: Path, pixels: np.ndarray, folder: Path, timeout: float) -> dict:
    """``elf`` in QEMU on uint8 ``pixels`` [N,28,28]: its outputs, instructions per image and peak stack."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels.astype(np.uint8).tofile(folder / "images.bin")
    command = ["qemu-system-arm", "-M", core.machine, "-nographic", "-monitor", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]  # fmt: skip
    try:
        done = _run(command, f"{core.key} firmware in QEMU", cwd=folder, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{core.key} firmware in QEMU: no exit after {timeout:g} s") from None
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    found = SUMMARY.fullmatch(line)
    if found is None or int(found["images"]) != len(pixels):
        raise RuntimeError(f"{core.key} firmware printed {line!r}")
    outputs = np.fromfile(folder / "outputs.bin", np.int8).reshape(len(pixels), -1)
    return {"outputs": outputs, "instructions": int(found["instructions"]), "stack_bytes": int(found["stack"]),
            "summary": line}  # fmt: skip


def host_outputs(lib: Path, pixels: np.ndarray, folder: Path) -> np.ndarray:
    """The same demo program built with this host's cc and run on ``pixels``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolMissing("no C compiler on this host (apt-get install gcc)")
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "classify_images"
    sources = [*sorted(lib.glob("*.c")), C / "classify_images.c"]
    _run([cc, *CFLAGS, "-I", str(lib), *map(str, sources), "-o", str(exe)], "compiling for this host")
    pixels.astype(np.uint8).tofile(folder / "images.bin")
    _run([str(exe)], "the host build", cwd=folder, timeout=600)
    return np.fromfile(folder / "outputs.bin", np.int8).reshape(len(pixels), -1)
