"""The device kit on 64-bit ARM: its commands under qemu give the same predictions as on this machine.

    make test-arm        # or: python -m pytest -m arm tests/test_arm.py

Most edge boards are aarch64, and onnxruntime's ARM kernels are not its x86 ones. The kit is built
from the smoke pipeline, unpacked, and its README's bench (``--quick``) and a ``runtime.classify``
of its images run twice: on this machine and on an emulated aarch64 Linux (``pipeline/measure/sysroot.py``,
built once into ``build/arm/``). Every image must get the same digit from every model, the
probabilities must agree closely, and the ARM JSON must be one the report accepts. On ARM the runtime
builds its image analysis (``runtime/native/ink.c``) as a board would, here with Debian's cross compiler
(``CROSS_CC``) in the board's place, and its 28x28s must be the host's. Emulated timings mean nothing, so
none is compared. Under CI a missing tool fails the test; elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline import device_kit
from pipeline.measure import devices, sysroot
from tests.user_images import make_set, mnist_sample

pytestmark = pytest.mark.arm

CACHE = Path(__file__).resolve().parents[1] / "build" / "arm"
TIMEOUT = 1800  # s: emulation is tens of times slower than the host
HOST_ENV = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
CROSS_CC = "aarch64-linux-gnu-gcc"  # Debian's gcc-aarch64-linux-gnu: what a board's own cc would build
CROSS_INSTALL = "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
SAME_C = 1e-6  # largest difference of a 28x28 pixel between the host's build of ink.c and the aarch64 one
ANALYSE = """
import json, sys
from pathlib import Path
from runtime import native
from runtime.preprocess import to_mnist
images = sorted(Path(sys.argv[1]).glob("*/*.*"))
found = {f"{p.parent.name}/{p.name}": to_mnist(p).tolist() for p in images}
print(json.dumps({"core": native.load().path.name, "images": found}))
"""


@pytest.fixture(scope="module")
def arm_python() -> list[str]:
    try:
        return sysroot.ensure(CACHE)
    except sysroot.SysrootError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the aarch64 sysroot cannot be built: {e}")
        pytest.skip(f"no aarch64 emulation here: {e}")


@pytest.fixture(scope="module")
def arm_env() -> dict[str, str]:
    """The emulated runs' environment: ink.c built by CROSS_CC, and an error, not numpy, if it cannot be."""
    if shutil.which(CROSS_CC) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CROSS_CC} is missing: {CROSS_INSTALL}")
        pytest.skip(f"{CROSS_CC} is missing: {CROSS_INSTALL}")
    return sysroot.env() | {"CC": CROSS_CC, "RUNTIME_INK": "native"}


@pytest.fixture(scope="module")
def kit(smoke_artifacts, tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("arm-kit")
    tarball = device_kit.build(smoke_artifacts, where / device_kit.KIT, smoke_artifacts / "data" / "mnist.npz")
    with tarfile.open(tarball) as tar:
        tar.extractall(where, filter="data")
    return where / device_kit.TOP


def _run(python: list[str], kit: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [*python, *args], cwd=kit, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(args[:2])} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def _both(arm_python: list[str], arm_env: dict, kit: Path, *args: str) -> tuple[str, str]:
    """stdout of ``python ARGS`` in the kit, on this machine and under qemu."""
    host = _run([sys.executable], kit, HOST_ENV | {"RUNTIME_INK": "native"}, *args)
    return host, _run(arm_python, kit, arm_env, *args)


def test_the_kit_bench_gives_the_same_predictions_on_aarch64(arm_python, arm_env, kit):
    bench = ["-m", "runtime.bench", "--quick", "--predictions"]  # the kit's own runtime/, from its folder
    _run([sys.executable], kit, HOST_ENV, *bench, "--name", "x86", "--out", "x86.json")
    _run(arm_python, kit, arm_env, *bench, "--name", "arm", "--out", "arm.json")
    x86, arm = devices.load([kit / "x86.json", kit / "arm.json"])
    assert arm["machine"]["arch"] == "aarch64" and "asimddp" in arm["machine"]["isa"]
    assert arm["images"]["files"] == x86["images"]["files"]
    for a, x in zip(arm["models"], x86["models"], strict=True):
        assert (a["name"], a["sha256"]) == (x["name"], x["sha256"])
        differ = [
            f for f, p, q in zip(x86["images"]["files"], a["predictions"], x["predictions"], strict=True) if p != q
        ]
        assert not differ, f"{a['name']}: aarch64 and x86 disagree on {differ}"


def test_runtime_classify_gives_the_same_digits_and_probabilities_on_aarch64(arm_python, arm_env, kit):
    args = ["-m", "runtime.classify", "--json", "--top", "10", "--model", "models/model.onnx", "images"]
    host, arm = (list(map(json.loads, out.splitlines())) for out in _both(arm_python, arm_env, kit, *args))
    assert len(host) == len(arm) == len(list((kit / "images").glob("*.png")))
    assert [(r["image"], r["digit"]) for r in arm] == [(r["image"], r["digit"]) for r in host]
    probabilities = [np.array(sorted(r["top"]))[:, 1] for r in (*host, *arm)]
    np.testing.assert_allclose(probabilities[len(host) :], probabilities[: len(host)], atol=1e-4)


def test_the_image_analysis_in_c_gives_the_same_28x28s_on_aarch64(arm_python, arm_env, kit, tmp_path):
    mnist = mnist_sample()
    for name in ("photo", "scan", "drawing", "typeset", "tight_bw", "white_on_black"):
        make_set(name, mnist, 8, tmp_path / name)
    host, arm = (json.loads(out) for out in _both(arm_python, arm_env, kit, "-c", ANALYSE, str(tmp_path)))
    assert arm["core"].endswith("-aarch64.so")  # ink.c built for the board, not numpy
    assert host["images"].keys() == arm["images"].keys() and len(host["images"]) == 48
    worst = max(float(np.abs(np.subtract(host["images"][k], arm["images"][k])).max()) for k in host["images"])
    assert worst <= SAME_C
