"""The instruction-set tiers onnxruntime dispatches on, and how to run ``runtime.parity`` on each from this machine.

    tier = tiers.get("haswell")
    outputs = tier.run(images_npy, models, scratch)     # {"NAME|defaults": array, ...}; Unavailable if it cannot

onnxruntime picks its CPU kernels at start-up from the CPU's features, and its int8 kernels do not
all compute the same numbers: on x86 with AVX2 but without VNNI, ``vpmaddubsw`` adds pairs of
uint8 x int8 products in 16 bits with saturation, where VNNI, SSE and ARM's dot products do not
saturate. So the same file can give another digit on another CPU, and a check on the build host
alone proves nothing about the others. Each tier here runs the same command
(``python -m runtime.parity``) on one kind of CPU:

- ``host``: this machine, natively (the reference the others are compared with);
- ``haswell``: x86-64 with AVX2 and FMA, no AVX-512 or VNNI, under ``qemu-x86_64-static -cpu Haswell``
  (QEMU's TCG implements AVX2 but not AVX-512, so this works on any x86-64 host);
- ``nehalem``: x86-64 with SSE4.2 and no AVX, under ``-cpu Nehalem``;
- ``aarch64``: a Neoverse-N1 (ARMv8.2 with dot product) under ``qemu-aarch64-static``, with a Debian
  arm64 Python and aarch64 wheels of the same versions (``pipeline.measure.sysroot``);
- ``wasm``: onnxruntime-web's WebAssembly build, the one the browser page loads, in Node
  (``web/parity.mjs``).

The emulated x86 tiers run this virtualenv's own interpreter and onnxruntime; OpenBLAS (under
numpy) is told the emulated CPU's type, since a core type set for the host would select
instructions the emulated CPU lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import config as config_mod
from pipeline.measure import sysroot

REPO = config_mod.REPO_ROOT
SYSROOT = REPO / "build" / "arm"  # built once, shared with `make test-arm`
QEMU_X86 = "qemu-x86_64-static"


class Unavailable(RuntimeError):
    """This host cannot run the tier: one line saying what is missing and how to get it."""


@dataclass(frozen=True)
class Tier:
    key: str
    name: str  # for the report: the instruction sets it stands for
    how: str  # how it is run here
    qemu_cpu: str | None = None  # the CPU model qemu-x86_64 emulates, for the emulated x86 tiers

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command that runs ``python -m runtime.parity`` (or its wasm twin) on this tier, and its environment."""
        env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
        python = [sys.executable]
        if self.qemu_cpu:
            if not shutil.which(QEMU_X86):
                raise Unavailable(f"{QEMU_X86} is missing (apt-get install qemu-user-static)")
            python = [QEMU_X86, "-cpu", self.qemu_cpu, sys.executable]
            env |= {"OPENBLAS_CORETYPE": self.qemu_cpu}
        elif self.key == "aarch64":
            try:
                python = sysroot.ensure(SYSROOT)
            except sysroot.SysrootError as e:
                raise Unavailable(f"no aarch64 sysroot: {e}") from None
            env = sysroot.env()
        elif self.key == "wasm":
            return self._node(), env
        return [*python, "-m", "runtime.parity"], env

    def _node(self) -> list[str]:
        from pipeline import web

        node = shutil.which("node")
        if node is None:
            raise Unavailable("node is missing (apt-get install npm)")
        if web.ensure_runtime() is None:
            raise Unavailable("npm is missing to install onnxruntime-web (apt-get install npm)")
        return [node, str(REPO / "web" / "parity.mjs")]

    def run(self, images: np.ndarray, models: list[Path], scratch: Path, timeout: float) -> dict[str, np.ndarray]:
        """Each model's raw outputs and probabilities on uint8 ``images`` [N,28,28], keyed as runtime.parity does."""
        command, env = self.command()
        scratch.mkdir(parents=True, exist_ok=True)
        wasm = self.key == "wasm"
        inputs = scratch / ("images.bin" if wasm else "images.npy")  # web/parity.mjs reads raw bytes
        out = scratch / ("outputs.json" if wasm else "outputs.npz")
        if wasm:
            images.tofile(inputs)
        else:
            np.save(inputs, images)
        try:
            done = subprocess.run(
                [*command, str(inputs), str(out), *map(str, models)],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.key}: stopped after {timeout:g} s (config parity.timeout)") from None
        if done.returncode != 0:
            tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise RuntimeError(f"{self.key}: {' '.join(command[:3])} ... failed:\n  {tail}")
        if wasm:
            return {k: np.asarray(v) for k, v in json.loads(out.read_text()).items()}
        with np.load(out) as found:
            return {k: found[k] for k in found.files}


TIERS = (
    Tier("host", "this machine", "natively"),
    Tier("haswell", "x86-64 AVX2, no VNNI (Haswell)", f"{QEMU_X86} -cpu Haswell", "Haswell"),
    Tier("nehalem", "x86-64 SSE4.2, no AVX (Nehalem)", f"{QEMU_X86} -cpu Nehalem", "Nehalem"),
    Tier("aarch64", "aarch64 NEON + dot product (Neoverse-N1)", f"qemu-aarch64-static -cpu {sysroot.QEMU_CPU}"),
    Tier("wasm", "WebAssembly SIMD (onnxruntime-web)", "Node, web/parity.mjs"),
)
BY_KEY = {t.key: t for t in TIERS}


def get(key: str) -> Tier:
    if key not in BY_KEY:
        raise KeyError(f"unknown tier {key!r}; known: {', '.join(BY_KEY)}")
    return BY_KEY[key]
