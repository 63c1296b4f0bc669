"""Floor 3: the EfficientNetB0 classifier, its training layers, inference engines and ONNX export."""
