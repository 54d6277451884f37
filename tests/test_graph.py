"""The deployed model's graph passes keep its predictions and stay fast under any onnxruntime's defaults."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from pipeline import graph
from runtime.session import ort_defaults, session_options
from tests import tiny_onnx


def run(model: onnx.ModelProto, x: np.ndarray, options=None) -> np.ndarray:
    session = ort.InferenceSession(
        model.SerializeToString(), options or ort_defaults(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def optimised_ops(model: onnx.ModelProto, options, tmp_path) -> set[str]:
    """The node types onnxruntime keeps after optimising ``model`` with ``options`` at load."""
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node}


@pytest.fixture
def fp32():
    return tiny_onnx.classifier()


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.load_from_string(model.SerializeToString())


def test_drop_softmax_outputs_logits_with_the_same_argmax(fp32):
    x = tiny_onnx.images()
    probabilities = run(fp32, x)
    dropped = graph.drop_softmax(copy(fp32))
    onnx.checker.check_model(dropped)
    assert [o.name for o in dropped.graph.output] == ["logits"]
    assert "Softmax" not in {n.op_type for n in dropped.graph.node}
    logits = run(dropped, x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probabilities, atol=1e-5)


def test_drop_softmax_refuses_a_graph_without_one(fp32):
    with pytest.raises(ValueError, match="not produced by a Softmax"):
        graph.drop_softmax(graph.drop_softmax(copy(fp32)))


def test_nchw_input_drops_the_reshape_and_computes_the_same(fp32):
    x = tiny_onnx.images()
    planar = graph.nchw_input(copy(fp32))
    onnx.checker.check_model(planar)
    assert [d.dim_value for d in planar.graph.input[0].type.tensor_type.shape.dim][1:] == [1, 28, 28]
    assert [n.op_type for n in planar.graph.node][:2] == ["Conv", "Relu"]
    np.testing.assert_allclose(run(planar, x.transpose(0, 3, 1, 2).copy()), run(fp32, x), atol=1e-6)


def test_flatten_channels_first_drops_the_transpose_and_computes_the_same(fp32):
    x = tiny_onnx.images()
    folded = graph.flatten_channels_first(copy(fp32))
    onnx.checker.check_model(folded)
    assert "Transpose" not in {n.op_type for n in folded.graph.node}
    np.testing.assert_allclose(run(folded, x), run(fp32, x), atol=1e-6)


def test_passes_apply_in_order_and_unknown_ones_are_refused(fp32):
    fast = graph.apply(copy(fp32), ("drop_softmax", "nchw_input", "flatten_channels_first", "int8_weights"))
    onnx.checker.check_model(fast)
    assert not {"Softmax", "Transpose", "Reshape"} & {n.op_type for n in fast.graph.node[:3]}
    with pytest.raises(ValueError, match="unknown graph pass 'fuse_all'"):
        graph.apply(copy(fp32), ("fuse_all",))


def test_nchw_input_refuses_a_graph_that_does_not_start_with_a_layout_change(fp32):
    with pytest.raises(ValueError, match="does not start by turning"):
        graph.nchw_input(graph.nchw_input(copy(fp32)))


def test_int8_weights_store_int8_kernels_and_predict_like_float(fp32):
    small = graph.int8_weights(copy(fp32))
    onnx.checker.check_model(small)
    arrays = {t.name: numpy_helper.to_array(t) for t in small.graph.initializer}
    for name in ("conv_w", "dense_w", "out_w"):
        assert arrays[f"{name}_int8"].dtype == np.int8 and name not in arrays
    assert len(small.SerializeToString()) < len(fp32.SerializeToString()) / 3
    x = tiny_onnx.images()
    np.testing.assert_allclose(run(small, x), run(fp32, x), atol=2e-2)
    assert np.mean(run(small, x).argmax(1) == run(fp32, x).argmax(1)) >= 0.95


@pytest.mark.parametrize("options", [ort_defaults, session_options], ids=["ORT defaults", "runtime options"])
def test_int8_weights_fold_to_float_at_load_under_any_options(fp32, options, tmp_path):
    """Structural, not timed: after onnxruntime's load-time optimisation nothing is left of the
    int8 storage (no Cast, Mul, DequantizeLinear or QLinear* node): the model computes in float."""
    ops = optimised_ops(graph.int8_weights(copy(fp32)), options(), tmp_path)
    assert not {op for op in ops if op in ("Cast", "Mul", "DequantizeLinear") or op.startswith("QLinear")}, ops
