"""ONNX export of a run's model.keras, checked against Keras.

    hpa-scc export --model runs/demo
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from keras import layers
from onnx import numpy_helper

from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_path, atomic_write_text, file_sha256
from hpa_scc.core.layout import MODEL_FILE, ONNX_FILE, ONNX_INFO_FILE
from hpa_scc.model.classifier import layers_of_type, load_classifier


def _normalization_constants(model) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer name, mean, variance) of every Normalization layer, nested models included."""
    return [(layer.name, np.asarray(layer.mean, np.float32), np.asarray(layer.variance, np.float32))
            for layer in layers_of_type(model, layers.Normalization)]


def _fold_graph_inputs(onnx_model, model) -> None:
    """Turn the Normalization mean/variance that tf2onnx leaves as graph inputs into constants.

    tf2onnx exports them as inputs (which ONNX Runtime then requires to be fed) named
    `.../<layer>/Sub/y:0` (mean) and `.../<layer>/Sqrt/x:0` (variance); each is matched to the Normalization layer whose name appears in it (longest
    name first), or to the only such layer. The export check against Keras catches a bad match.
    """
    constants = sorted(_normalization_constants(model), key=lambda item: -len(item[0]))
    graph = onnx_model.graph
    used = {name for node in graph.node for name in node.input}
    for graph_input in list(graph.input)[1:]:
        name = graph_input.name
        if name not in used:  # tf2onnx already folded its value; only the dangling input is left
            graph.input.remove(graph_input)
            continue
        parts = name.split("/")
        owner = parts[-3] if len(parts) >= 3 else ""
        match = [c for c in constants if owner == c[0] or owner.startswith(c[0] + "_")]
        if not match and len(constants) == 1:
            match = constants
        if not match or not (name.endswith("/Sub/y:0") or name.endswith("/Sqrt/x:0")):
            raise InputError(f"ONNX export: cannot fold graph input {name!r} into a constant")
        _, mean, variance = match[0]
        value = mean if name.endswith("/Sub/y:0") else variance
        shape = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        graph.initializer.append(numpy_helper.from_array(value.reshape(shape).astype(np.float32), name))
        graph.input.remove(graph_input)


# max |ONNX - Keras| of a probability on random full-range inputs: float32 op order differs between
# the two runtimes, and through 16 MBConv blocks a trained 128 px model reached 3.75e-4 (harmless to ranks)
EXPORT_TOLERANCE = 1e-3


def export_onnx(run: str | Path, tolerance: float = EXPORT_TOLERANCE, samples: int = 4) -> dict:
    """Export RUNDIR/model.keras to RUNDIR/model.onnx (+ model.onnx.json); checks it against Keras.

    Returns {"path", "max_abs_diff", "keras_sha256"}; InputError if the outputs differ by more
    than `tolerance` on `samples` random inputs in [0, 255].
    """
    run = Path(run)
    keras_path = run / MODEL_FILE
    model = load_classifier(keras_path)
    shape = tuple(model.input_shape[1:])
    probe = np.random.default_rng(0).uniform(0, 255, (samples, *shape)).astype(np.float32)
    expected = np.asarray(model(probe, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        model.export(str(raw), format="onnx", verbose=False)
        onnx_model = onnx.load(str(raw))
    _fold_graph_inputs(onnx_model, model)
    onnx.checker.check_model(onnx_model)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        raise InputError(f"ONNX export of {keras_path}: outputs differ from Keras by {diff:.2e} (> {tolerance:g})")
    out = run / ONNX_FILE
    with atomic_path(out) as tmp_path:
        onnx.save(onnx_model, str(tmp_path))
    info = {"path": str(out), "max_abs_diff": diff, "keras_sha256": file_sha256(keras_path)}
    atomic_write_text(run / ONNX_INFO_FILE, json.dumps(info, indent=1))
    return info
