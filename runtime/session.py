"""The runtime's onnxruntime settings, and onnxruntime's own defaults to measure them against.

    from runtime.session import session_options, ort_defaults
    ort.InferenceSession("model.onnx", session_options(), providers=["CPUExecutionProvider"])

``ort_defaults`` is how any other onnxruntime consumer opens a model (C, C++, C#, Java,
mobile, web, or Python without options), pinned to one thread so the two compare like for
like: the deployed model must be fast under both.
"""

from __future__ import annotations

import onnxruntime as ort


def session_options() -> ort.SessionOptions:
    """The runtime's onnxruntime settings, all in one place."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one image of a small CNN: threads cost more to start than they save
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the runtime reports problems itself
    # QDQ fusion stays on, so an int8 file computes in integers, the same on every CPU. Turned off
    # ("session.disable_quant_qdq"), int8 files ran in float, up to 30 % faster at batch 1 here but
    # a step off now and then on a CPU of another instruction set (the parity matrix saw it). The
    # deployed model's int8 weights (Cast -> Mul) are folded to float at load either way.
    return options


def ort_defaults(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime's default settings, on ``threads`` intra-op threads, quiet."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options
