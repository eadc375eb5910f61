"""Export: packaged models (ONNX + feature artifacts) and the Triton model repository."""
