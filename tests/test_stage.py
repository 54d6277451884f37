"""Shared stage machinery: atomic writes, records and the stderr filter."""

import subprocess
import sys

import pytest

from pipeline.core import stage

SCRIPT = """
import os
from pipeline.core import quiet
with quiet.third_party_chatter_filtered():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1795244305.688907   26947 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"E0000 00:00:1795244307.703842   26947 cuda_platform.cc:52] failed call to cuInit\\n")
    os.write(2, b"E0000 00:00:1795244307.703842   26947 some_kernel.cc:12] a real TensorFlow error\\n")
    os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\\n")
    os.write(2, b"\\x1b[0;93m2026-11-22 07:47:41.92 [W:onnxruntime:Default, config_options.cc:45 AddConfig] C\\n")
    os.write(2, b"Traceback (most recent call last): a Python error\\n")
"""


def test_tensorflow_chatter_is_dropped_and_everything_else_kept():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, check=True)
    assert done.stderr.splitlines() == [
        b"E0000 00:00:1795244307.703842   26947 some_kernel.cc:12] a real TensorFlow error",
        b"Traceback (most recent call last): a Python error",
    ]


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), stage.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
