"""Inference engines: a run's model as a function float32 B x S x S x C in [0, 255] -> B x 19 (Keras
or ONNX Runtime), and test-time augmentation around one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import tensorflow as tf

from hpa_scc.core.errors import InputError
from hpa_scc.core.files import file_sha256
from hpa_scc.core.layout import MODEL_FILE, ONNX_FILE, ONNX_INFO_FILE
from hpa_scc.model.classifier import load_classifier


class KerasEngine:
    """The Keras model as a compiled function: float32 B x S x S x C in [0, 255] -> B x 19."""

    def __init__(self, model_path: str | Path):
        self.model = load_classifier(model_path)
        shape = tuple(self.model.input_shape[1:])
        self.input_shape = shape
        self._call = tf.function(lambda x: self.model(x, training=False),
                                 input_signature=[tf.TensorSpec((None, *shape), tf.float32)])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch.astype(np.float32, copy=False)))


class OnnxEngine:
    """ONNX Runtime session of RUNDIR/model.onnx (made by `hpa-scc export`); same contract as KerasEngine."""

    def __init__(self, run: str | Path, threads: int = 0):
        run = Path(run)
        path, info_path = run / ONNX_FILE, run / ONNX_INFO_FILE
        if not path.is_file():
            raise InputError(f"{path} does not exist: run `hpa-scc export --model {run}` first")
        if info_path.is_file() and (run / MODEL_FILE).is_file():
            recorded = json.loads(info_path.read_text()).get("keras_sha256")
            if recorded != file_sha256(run / MODEL_FILE):
                raise InputError(f"{path} was exported from another model.keras: run `hpa-scc export --model {run}` again")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ONNX model ({type(exc).__name__})") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = tuple(model_input.shape[1:])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})[0]


def load_engine(run: str | Path, engine: str):
    """KerasEngine (RUNDIR/model.keras) or OnnxEngine (RUNDIR/model.onnx)."""
    run = Path(run)
    if engine == "onnx":
        return OnnxEngine(run)
    return KerasEngine(run / MODEL_FILE)


def with_tta(engine: Callable[[np.ndarray], np.ndarray], rot90: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Average of the engine over the batch, its horizontal and its vertical flip; with `rot90`,
    over all 8 flips and 90-degree turns of the batch (B x S x S x C)."""

    def flips(batch: np.ndarray) -> np.ndarray:
        return (engine(batch) + engine(batch[:, :, ::-1]) + engine(batch[:, ::-1])) / 3.0

    def dihedral(batch: np.ndarray) -> np.ndarray:
        views = [np.rot90(batch, k, axes=(1, 2)) for k in range(4)]
        views += [view[:, :, ::-1] for view in views]
        return sum(engine(np.ascontiguousarray(view)) for view in views) / len(views)

    return dihedral if rot90 else flips
