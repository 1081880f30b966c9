"""Conversion: PyTorch -> ONNX / ONNX Runtime / TFLite (LiteRT) / TensorRT, each checked against PyTorch."""
