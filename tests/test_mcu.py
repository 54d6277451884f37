"""The microcontroller target: TFLite Micro measurements (pipeline.mcu), firmware files (pipeline.formats.firmware)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import mcu
from pipeline.formats import firmware, tflite_io

# --- fast: the C array, the resolver, the arena size, the pick --------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xff" * 12, bytes(range(256)), b"TFL3" * 7, random.Random(9).randbytes(1000)],
    ids=["empty", "one", "one-line", "every-byte", "partial-line", "random"],
)
def test_c_array_round_trips(data):
    text = firmware.c_array(data)
    assert f"alignas({firmware.ALIGN}) const unsigned char {firmware.ARRAY}[]" in text
    assert f"const unsigned int {firmware.ARRAY}_len = {len(data)};" in text
    assert firmware.parse_c_array(text) == data


def test_parse_reads_xxd_output_with_comments():
    text = """/* xxd -i model.tflite */
unsigned char model_tflite[] = {
  0x1c, 0x00, 0x00, // a comment
  0x54, 0x46, 0x4c, 0x33
};
unsigned int model_tflite_len = 7;
"""
    assert firmware.parse_c_array(text, "model_tflite") == b"\x1c\x00\x00TFL3"


def test_parse_cuts_to_the_declared_length():
    assert firmware.parse_c_array("const unsigned char a[] = {1, 2, 0};\nconst int a_len = 2;", "a") == b"\x01\x02"


@pytest.mark.parametrize(
    "text",
    [
        "int nothing_here = 0;",
        "const unsigned char g_model_data[] = {0x100};",
        "const unsigned char g_model_data[] = {0x01, x};",
        "const unsigned char g_model_data[] = {0x01};\nconst unsigned int g_model_data_len = 2;",
    ],
    ids=["absent", "out-of-range", "not-a-number", "short"],
)
def test_parse_refuses_what_is_not_a_byte_array(text):
    with pytest.raises(ValueError):
        firmware.parse_c_array(text)


@pytest.mark.parametrize(
    ("op", "method"),
    [
        ("CONV_2D", "AddConv2D"),
        ("MAX_POOL_2D", "AddMaxPool2D"),
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
        ("RESHAPE", "AddReshape"),
        ("SOFTMAX", "AddSoftmax"),
        ("UNIDIRECTIONAL_SEQUENCE_LSTM", "AddUnidirectionalSequenceLSTM"),
    ],
)
def test_resolver_method_is_tflm_s_name(op, method):
    assert firmware.resolver_method(op) == method


@pytest.mark.parametrize(("measured", "margin", "size"), [(1, 0, 16), (16, 0, 16), (17, 0, 32), (14368, 1024, 15392)])
def test_arena_size_adds_the_margin_and_rounds_up_to_the_alignment(measured, margin, size):
    assert firmware.arena_size(measured, margin) == size


def test_captured_stderr_gets_what_is_written_to_the_file_descriptor():
    with mcu.captured_stderr() as printed:
        os.write(2, b"[RecordingMicroAllocator] Arena allocation total 123 bytes\n")
    assert printed == ["[RecordingMicroAllocator] Arena allocation total 123 bytes\n"]


def _row(name, val, flash, arena):
    return {"name": name, "val_accuracy": val, "flash_bytes": flash, "arena_bytes": arena}


def test_pick_is_the_smallest_flash_plus_arena_within_the_drop():
    rows = [_row("big", 0.993, 60_000, 20_000), _row("small", 0.992, 30_000, 14_000), _row("tiny", 0.98, 9, 9)]
    assert mcu.pick(rows, baseline_val_accuracy=0.993, max_drop_pp=0.1) == ("small", False)


def test_pick_falls_back_to_the_most_accurate():
    rows = [_row("a", 0.95, 1, 1), _row("b", 0.97, 2, 2)]
    assert mcu.pick(rows, baseline_val_accuracy=0.99, max_drop_pp=0.1) == ("b", True)


# --- slow: the stage on the smoke artifacts ----------------------------------------------------


@pytest.fixture(scope="module")
def mcu_folder(smoke_artifacts):
    """The smoke run's folder, where `make all` ran the stage on the smoke int8 models."""
    return smoke_artifacts


@pytest.fixture(scope="module")
def models(mcu_folder):
    return {m["name"]: m for m in json.loads((mcu_folder / mcu.OUTPUT).read_text())["models"]}


@pytest.mark.slow
def test_every_int8_tflite_model_is_measured(models):
    assert sorted(models) == sorted(mcu.default_names())


@pytest.mark.slow
@pytest.mark.parametrize("name", mcu.default_names())
def test_tflm_accuracy_is_far_above_chance_and_agrees_with_litert(models, name):
    m = models[name]
    assert m["val_accuracy"] > 0.8 and m["test_accuracy"] > 0.8  # chance is 0.1
    assert m["agreement_with_litert"] >= 0.99
    assert m["ms_per_image"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", mcu.default_names())
def test_flash_is_the_file_and_arena_is_what_tflm_allocates(models, mcu_folder, name):
    m = models[name]
    assert m["flash_bytes"] == (mcu_folder / name).stat().st_size > 0
    assert m["arena_bytes"] > 0 and m["allocations"]["total_bytes"] > 0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(m["ops"])


@pytest.mark.slow
def test_the_bisected_arena_allocates_and_one_step_less_does_not(models, mcu_folder):
    name = "structured_qat_int8.tflite"
    model, arena = (mcu_folder / name).read_bytes(), models[name]["arena_bytes"]
    probe = tflite_io.spec(mcu_folder / name).encode(np.zeros((1, 28, 28, 1)))
    assert mcu.interpreter(model, arena, probe) is not None
    assert mcu.interpreter(model, arena - mcu.ARENA_GRANULARITY, probe) is None


@pytest.mark.slow
def test_the_stage_writes_its_record(mcu_folder):
    record = json.loads((mcu_folder / "records" / f"{mcu.OUTPUT}.json").read_text())
    assert record["stage"] == "mcu" and record["versions"]["tflite-micro"]


@pytest.fixture(scope="module")
def firmware_folder(models, mcu_folder, tmp_path_factory):
    m = models["structured_qat_int8.tflite"]
    where = tmp_path_factory.mktemp("firmware")
    accuracy = {"validation": m["val_accuracy"], "test": m["test_accuracy"]}
    firmware.write(
        mcu_folder / m["name"], m["arena_bytes"], where, model_name=m["name"], ops=m["ops"], accuracy=accuracy
    )
    return where


@pytest.mark.slow
def test_the_firmware_array_round_trips_to_the_model(firmware_folder, mcu_folder):
    cc = (firmware_folder / "model_data.cc").read_text()
    assert firmware.parse_c_array(cc) == (mcu_folder / "structured_qat_int8.tflite").read_bytes()


@pytest.mark.slow
def test_the_firmware_readme_registers_exactly_the_model_s_ops(firmware_folder, models):
    ops = models["structured_qat_int8.tflite"]["ops"]
    readme = (firmware_folder / "README.md").read_text()
    assert f"MicroMutableOpResolver<{len(ops)}>" in readme
    assert readme.count("  resolver.Add") == len(ops)
    assert all(f"resolver.{firmware.resolver_method(op)}();" in readme for op in ops)
    arena = firmware.arena_size(models["structured_qat_int8.tflite"]["arena_bytes"])
    assert f"constexpr int kTensorArenaSize = {arena};" in (firmware_folder / "model_data.h").read_text()


MAIN = """#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  static_assert(kTensorArenaSize % 16 == 0, "arena size is a multiple of 16");
  if (reinterpret_cast<std::uintptr_t>(g_model_data) % 16 != 0) return 3;
  return std::fwrite(g_model_data, 1, g_model_data_len, stdout) == g_model_data_len ? 0 : 4;
}
"""


@pytest.mark.slow
def test_the_firmware_files_compile_and_hold_the_model_aligned(firmware_folder, mcu_folder, tmp_path):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed: the C++ check is skipped (the files are still parsed back)")
    (tmp_path / "main.cc").write_text(MAIN)
    exe = tmp_path / "dump"
    subprocess.run(
        [gxx, "-std=c++17", "-Wall", "-Werror", f"-I{firmware_folder}", str(tmp_path / "main.cc"),
         str(firmware_folder / "model_data.cc"), "-o", str(exe)],
        check=True, capture_output=True,
    )  # fmt: skip
    done = subprocess.run([str(exe)], capture_output=True, check=True)
    assert done.stdout == (mcu_folder / "structured_qat_int8.tflite").read_bytes()
