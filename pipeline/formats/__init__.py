"""Model files: ONNX and TFLite conversion and metadata, ONNX graph passes, TFLite Micro firmware files."""
