"""The deployed model's graph passes keep its predictions and stay fast under any onnxruntime's defaults."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from pipeline.formats import graph
from runtime.metadata import mnist_to_float
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


def _int8_qdq(tmp_path, fp32: onnx.ModelProto) -> onnx.ModelProto:
    """``fp32`` quantised by onnxruntime as TFLite does it: QDQ, int8 activations, symmetric int8 weights."""
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": tiny_onnx.images(16, seed=s)} for s in range(4)])

        def get_next(self):
            return next(self.batches, None)

    (tmp_path / "fp32.onnx").write_bytes(fp32.SerializeToString())
    q.quantize_static(
        str(tmp_path / "fp32.onnx"),
        str(tmp_path / "int8.onnx"),
        Reader(),
        quant_format=q.QuantFormat.QDQ,
        activation_type=q.QuantType.QInt8,
        weight_type=q.QuantType.QInt8,
        per_channel=True,
    )
    return onnx.load(str(tmp_path / "int8.onnx"))


def qdq_in_float() -> ort.SessionOptions:
    """onnxruntime's defaults without QDQ fusion: each node as the ONNX spec defines it, DequantizeLinear ->
    the float op -> QuantizeLinear, the same float arithmetic whatever the quantised types are."""
    options = ort_defaults()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return options


def test_uint8_offset_computes_exactly_what_the_int8_model_computes(tmp_path, fp32):
    """The same function, to the bit, in QDQ's own terms. Not compared on integer kernels: there the int8
    model is exact only where onnxruntime's kernels do not saturate (x86 without VNNI does), which is why
    the pass exists; tests/test_tiers.py shows the uint8 form exact on every emulated CPU tier."""
    int8 = _int8_qdq(tmp_path, fp32)
    shifted = graph.uint8_offset(copy(int8))
    onnx.checker.check_model(shifted, full_check=True)
    stored = {t.data_type for t in shifted.graph.initializer}
    assert onnx.TensorProto.INT8 not in stored and onnx.TensorProto.UINT8 in stored
    x = tiny_onnx.images(200, seed=7)
    np.testing.assert_array_equal(run(shifted, x, qdq_in_float()), run(int8, x, qdq_in_float()))
    fused = optimised_ops(shifted, session_options(), tmp_path)
    assert {"QLinearConv", "QGemm"} & fused and not {"Conv", "FusedConv", "Gemm", "FusedGemm"} & fused


def test_uint8_offset_moves_int8_graph_inputs_and_outputs_with_their_zero_points():
    q = onnx.helper
    nodes = [
        q.make_node("DequantizeLinear", ["x", "s", "zp"], ["real"]),
        q.make_node("Relu", ["real"], ["r"]),
        q.make_node("QuantizeLinear", ["r", "s", "zp"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.float32(0.5), "s"), numpy_helper.from_array(np.int8(-3), "zp")]
    model = q.make_model(
        q.make_graph(
            nodes,
            "io",
            [q.make_tensor_value_info("x", onnx.TensorProto.INT8, [4])],
            [q.make_tensor_value_info("y", onnx.TensorProto.INT8, [4])],
            inits,
        ),
        opset_imports=[q.make_opsetid("", 17)],
    )
    x = np.array([-128, -3, 0, 127], np.int8)
    before = run(model, x).astype(np.int16)
    shifted = graph.uint8_offset(copy(model))
    after = run(shifted, (x.astype(np.int16) + 128).astype(np.uint8)).astype(np.int16)
    np.testing.assert_array_equal(after, before + 128)


def test_drop_unused_drops_imports_of_domains_no_node_uses(fp32):
    model = copy(fp32)
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    assert [o.domain for o in graph.drop_unused(model).opset_import] == [""]


def test_apply_drops_initialisers_no_node_reads(fp32):
    fast = graph.apply(copy(fp32), ("nchw_input",))  # removes the Reshape that read "nchw"
    names = {t.name for t in fast.graph.initializer}
    assert "nchw" not in names
    assert names <= {i for n in fast.graph.node for i in n.input}


def test_relu_after_quantize_puts_a_tflite_models_relu_layers_on_integer_kernels_bit_exact_with_litert(tmp_path):
    """tf2onnx of a quantisation-aware int8 TFLite model: its ReLUs' zero points are not the type's least value, so
    without the pass onnxruntime runs those layers in float (FusedConv, FusedGemm), whose rounding follows the
    CPU; with it every layer is an integer kernel and the outputs are LiteRT's, to the bit."""
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    from pipeline.formats import tflite_io
    from tests.tiny_tflite import tiny_model

    path = tiny_model(tmp_path / "tiny_qat_int8.tflite", (4, 6), (5, 3), 16, qat=True)
    before = graph.uint8_offset(tf2onnx.convert.from_tflite(str(path), opset=17)[0])
    after = graph.relu_after_quantize(copy(before))
    onnx.checker.check_model(after, full_check=True)
    float_kernels = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul"}
    assert optimised_ops(before, ort_defaults(), tmp_path) & float_kernels
    assert not optimised_ops(after, ort_defaults(), tmp_path) & float_kernels
    rng = np.random.default_rng(3)
    pixels = (rng.random((500, 28, 28)) * 255 * (rng.random((500, 28, 28)) > 0.6)).astype(np.uint8)
    q = tflite_io.spec(path).encode(mnist_to_float(pixels))
    lite = Interpreter(str(path))
    lite.resize_tensor_input(lite.get_input_details()[0]["index"], q.shape)
    lite.allocate_tensors()
    lite.set_tensor(lite.get_input_details()[0]["index"], q)
    lite.invoke()
    expected = lite.get_tensor(lite.get_output_details()[0]["index"]).astype(np.int16) + 128
    np.testing.assert_array_equal(run(after, (q.astype(np.int16) + 128).astype(np.uint8)), expected)
