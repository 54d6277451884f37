"""The firmware stage on the smoke models: generated C bit-exact with TFLite Micro on the host and in QEMU.

What `make all` wrote in the smoke run: every int8 model's library checked on every validation and
test image on this host, each core's firmware on the test images, the pick on the whole test set.
Then the deployed ELF is fed digits of the test's own making through images.bin, as anyone would,
and must reproduce TFLite Micro's outputs. Under CI the cross toolchain and QEMU must be there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import artifacts, config, firmware
from pipeline.measure import cortex_m
from tests.test_codegen import tflm_outputs

INT8 = [a.name for a in artifacts.select("int8.tflite")]


@pytest.fixture(scope="module")
def measured(smoke_artifacts) -> dict:
    found = json.loads((smoke_artifacts / firmware.OUTPUT).read_text())
    if found.get("skipped"):
        if os.environ.get("CI") == "true":
            pytest.fail(f"the firmware stage did not run: {found['skipped']}")
        pytest.skip(f"no Cortex-M toolchain here: {found['skipped']}")
    return found


def by_name(measured: dict) -> dict[str, dict]:
    return {m["name"]: m for m in measured["models"]}


@pytest.mark.parametrize("name", INT8)
def test_every_int8_model_is_bit_exact_with_tflite_micro_on_the_host_and_every_core(measured, smoke_config, name):
    m = by_name(measured)[name]
    assert m["host_bit_exact"] and m["host_images"] == smoke_config.data.validation_size + smoke_config.data.test_limit
    assert set(m["cores"]) == set(config.FirmwareConfig().cores)
    for key, c in m["cores"].items():
        assert c["bit_exact"] and c["images"] == min(smoke_config.firmware.images, smoke_config.data.test_limit), key
        assert c["instructions_per_image"] >= m["macs"], f"{key}: fewer instructions than multiply-adds"
        assert (
            c["ram_bytes"] == c["static_ram_bytes"] + c["stack_bytes"] and 0 < c["stack_bytes"] < cortex_m.STACK_PAINT
        )
        assert 0 < c["library_flash_bytes"] < c["firmware_flash_bytes"]


@pytest.mark.parametrize("name", INT8)
def test_every_model_runs_the_whole_test_set_on_the_first_core_bit_exact(measured, smoke_config, name):
    m = by_name(measured)[name]
    whole = m["full_test"]
    assert whole["core"] == smoke_config.firmware.cores[0]
    assert whole["bit_exact"] and whole["images"] == smoke_config.data.test_limit
    assert whole["test_accuracy"] == pytest.approx(m["test_accuracy"])


def test_the_deployed_library_is_only_c_and_builds_alone_with_any_c99_compiler(smoke_artifacts, tmp_path):
    lib = smoke_artifacts / "mcu" / "lib"
    assert sorted(p.name for p in lib.iterdir()) == ["mnist_model.c", "mnist_model.h", "nn_int8.c", "nn_int8.h"]
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    for source in ("mnist_model.c", "nn_int8.c"):
        command = [
            cc,
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Werror",
            "-c",
            str(lib / source),
            "-o",
            str(tmp_path / "x.o"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def test_the_deployed_elf_reproduces_tflite_micro_on_digits_of_our_own(measured, smoke_artifacts, tmp_path):
    decision = json.loads((smoke_artifacts / "deploy.json").read_text())
    pick = next(t for t in decision["targets"] if t["format"] == "c99")["pick"]
    rng = np.random.default_rng(7)
    pixels = (rng.random((40, 28, 28)) * 255 * (rng.random((40, 28, 28)) > 0.75)).astype(np.uint8)
    for key in measured["models"][0]["cores"]:
        ran = cortex_m.run(cortex_m.CORES[key], smoke_artifacts / "mcu" / f"{key}.elf", pixels, tmp_path / key, 300)
        np.testing.assert_array_equal(ran["outputs"], tflm_outputs(smoke_artifacts / pick, pixels), err_msg=key)


def test_without_the_toolchain_the_stage_says_what_to_install_and_records_it(monkeypatch, tmp_path, capsys):
    from pipeline.reporting import cortex_m as section

    monkeypatch.setattr(cortex_m, "missing", lambda: ["qemu-system-arm"])
    out = firmware.run(config.load("smoke", tmp_path, overrides=[]))
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "apt-get install" in line and "qemu-system-arm" in line
    found = json.loads(out.read_text())
    assert found["skipped"] and found["models"] == []
    assert "Not built: missing qemu-system-arm" in section.section(found, None)
