"""The deployed model's graph passes keep its predictions."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from pipeline import graph

pytestmark = pytest.mark.slow


def run(model: onnx.ModelProto, x: np.ndarray, fold_weights: bool = False) -> np.ndarray:
    options = ort.SessionOptions()
    if fold_weights:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def fp32(smoke_artifacts):
    return onnx.load(str(smoke_artifacts / "structured_fp32.onnx"))


@pytest.fixture(scope="module")
def images(mnist):
    return (mnist["x_test"][:300, :, :, None] / 255.0).astype(np.float32)


def test_drop_softmax_outputs_logits_with_the_same_argmax(fp32, images):
    probabilities = run(fp32, images)
    dropped = graph.drop_softmax(onnx.load_from_string(fp32.SerializeToString()))
    onnx.checker.check_model(dropped)
    assert [o.name for o in dropped.graph.output] == ["logits"]
    assert "Softmax" not in {n.op_type for n in dropped.graph.node}
    logits = run(dropped, images)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probabilities, atol=1e-5)


def test_drop_softmax_refuses_a_graph_without_one(fp32):
    dropped = graph.drop_softmax(onnx.load_from_string(fp32.SerializeToString()))
    with pytest.raises(ValueError, match="not produced by a Softmax"):
        graph.drop_softmax(dropped)


def test_int8_weights_store_int8_and_predict_like_float(fp32, images):
    small = graph.int8_weights(onnx.load_from_string(fp32.SerializeToString()))
    onnx.checker.check_model(small)
    kernels = [numpy_helper.to_array(t) for t in small.graph.initializer if len(t.dims) >= 2]
    assert kernels and all(k.dtype == np.int8 for k in kernels)
    assert len(small.SerializeToString()) < len(fp32.SerializeToString()) / 3
    reference = run(fp32, images).argmax(axis=1)
    for fold in (False, True):  # the same answers whether onnxruntime folds the weights or not
        agreement = np.mean(run(small, images, fold_weights=fold).argmax(axis=1) == reference)
        assert agreement >= 0.98, agreement
