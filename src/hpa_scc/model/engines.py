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
from hpa_scc.model.export import export_onnx


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
        if (run / MODEL_FILE).is_file():
            if not info_path.is_file():
                raise InputError(f"{info_path} is missing: which model.keras {path} was exported from is unknown; "
                                 f"run `hpa-scc export --model {run}` again")
            try:
                recorded = json.loads(info_path.read_text()).get("keras_sha256")
            except (OSError, ValueError, AttributeError):
                recorded = None
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


def load_engine(run: str | Path, engine: str, threads: int = 0):
    """KerasEngine (RUNDIR/model.keras) or OnnxEngine (RUNDIR/model.onnx; exported from
    model.keras, and checked against it, the first time a run is used with the ONNX engine)."""
    run = Path(run)
    if engine == "onnx":
        if not (run / ONNX_FILE).exists() and (run / MODEL_FILE).is_file():
            print(f"exporting {run / ONNX_FILE} (the first use of this run with the ONNX engine)")
            export_onnx(run)
        return OnnxEngine(run, threads)
    return KerasEngine(run / MODEL_FILE)


def tta_views(batch: np.ndarray, rot90: bool = False) -> list[np.ndarray]:
    """The views of a batch B x S x S x C that TTA averages over: the batch and its horizontal and
    vertical flips, or with `rot90` all 8 flips and 90-degree turns."""
    if not rot90:
        return [batch, batch[:, :, ::-1], batch[:, ::-1]]
    turns = [np.rot90(batch, k, axes=(1, 2)) for k in range(4)]
    return turns + [view[:, :, ::-1] for view in turns]


def with_tta(engine: Callable[[np.ndarray], np.ndarray], rot90: bool = False,
             one_pass: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """The engine averaged over the views of `tta_views`. one_pass: all views of a batch in one
    call of len(views) x B crops (Keras on a CPU: its per-call cost is paid once); else one call per
    view (ONNX Runtime on a CPU is fastest at small batches: `hpa-scc bench predict`)."""
    def averaged(batch: np.ndarray) -> np.ndarray:
        views = tta_views(batch, rot90)
        if not one_pass:
            return sum(engine(np.ascontiguousarray(view)) for view in views) / len(views)
        outputs = engine(np.concatenate(views, axis=0))
        return outputs.reshape(len(views), len(batch), -1).mean(axis=0)
    return averaged
