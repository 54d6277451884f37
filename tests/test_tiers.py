"""The emulated CPU tiers see what those CPUs compute: the saturation of x86 AVX2 int8 kernels, from any host.

onnxruntime's uint8 x int8 kernels on x86 with AVX2 and without VNNI add pairs of products in 16 bits
with saturation. A tiny model built to overflow that (weights of 127 against bright pixels) must come
out wrong on the emulated Haswell tier whatever CPU runs the test, and its uint8 x uint8 form, the one
the pipeline exports, exact on every tier. Needs qemu-user-static; under CI it must be there.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.measure import tiers
from runtime.metadata import ModelSpec

pytestmark = pytest.mark.emulated
SCALE = 1.0  # input and weight scale: the integers are the real values
OUT_SCALE = 2.0**17  # the sums reach 784 x 255 x 127, about 194 steps of this


def overflowing(weight_type: int, weight_zero: int) -> onnx.ModelProto:
    """uint8 image [N,28,28,1] -> DQ -> flatten -> MatMul(DQ(127-weights)) -> Q: a sum of pixel x 127."""
    w = np.full((784, 10), 127 + weight_zero, np.uint8 if weight_type == TensorProto.UINT8 else np.int8)
    inits = [
        numpy_helper.from_array(np.float32(SCALE), "s"),
        numpy_helper.from_array(np.uint8(0), "zp"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array(weight_zero, w.dtype), "wzp"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat"),
        numpy_helper.from_array(np.float32(OUT_SCALE), "os"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["image", "s", "zp"], ["x"]),
        helper.make_node("Reshape", ["x", "flat"], ["row"]),
        helper.make_node("DequantizeLinear", ["w", "s", "wzp"], ["weights"]),
        helper.make_node("MatMul", ["row", "weights"], ["sum"]),
        helper.make_node("QuantizeLinear", ["sum", "os", "zp"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("out", TensorProto.UINT8, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    spec = ModelSpec(input_dtype="uint8", input_scale=1 / 255, output="logits", output_scale=OUT_SCALE)
    helper.set_model_props(model, spec.to_props())
    onnx.checker.check_model(model, full_check=True)
    return model


def outputs(tier: str, models: dict[str, onnx.ModelProto], images: np.ndarray, tmp_path) -> dict[str, np.ndarray]:
    paths = []
    for name, model in models.items():
        paths.append(tmp_path / f"{name}.onnx")
        paths[-1].write_bytes(model.SerializeToString())
    try:
        found = tiers.get(tier).run(images, paths, tmp_path / tier, timeout=600)
    except tiers.Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tier}: {e}")
        pytest.skip(str(e))
    return {name: found[f"{name}.onnx|defaults"] for name in models}


def test_the_haswell_tier_shows_avx2_saturation_and_uint8_weights_avoid_it(tmp_path):
    rng = np.random.default_rng(0)
    images = np.where(rng.random((8, 28, 28)) < 0.5, 255, 0).astype(np.uint8)
    exact = np.clip(np.rint(images.reshape(8, -1).astype(np.int64).sum(1) * 127 / OUT_SCALE), 0, 255)
    models = {"u8s8": overflowing(TensorProto.INT8, 0), "u8u8": overflowing(TensorProto.UINT8, 128)}
    for tier in ("haswell", "nehalem"):
        found = outputs(tier, models, images, tmp_path)
        np.testing.assert_array_equal(found["u8u8"][:, 0], exact, err_msg=f"uint8 x uint8 is not exact on {tier}")
        if tier == "haswell":
            assert (found["u8s8"][:, 0] < exact).all(), "AVX2's 16-bit saturation did not show on the Haswell tier"
        else:
            np.testing.assert_array_equal(found["u8s8"][:, 0], exact, err_msg="SSE kernels do not saturate")
