"""The `unet` backend: a small Keras U-Net that predicts hpacellseg's map format, then hpacellseg's
post-processing (`segment.label_cell`).

    segment:
      backend: unet
      unet_weights: null      # null = the network shipped in the package (segment/weights/unet.onnx);
                              # or a NAME.onnx / NAME.weights.h5 written by `hpa-scc train-segmenter`

Input: red, yellow and blue, each scaled so that its 99.5th percentile is 1, at the working side
(`unet_side`, 512 px for a whole frame: 1/4 of 2048²). Output at that side: two 3-class softmax
maps (background, border, interior), nuclei and cells, smoothed (`unet_map_smooth`, Gaussian sigma
in px of the working side), turned into hpacellseg's uint8 maps
(channel 1 border, 2 interior) and labelled there by label_cell's algorithm with its areas scaled
to the frame (as its fast mode does: areas are px of a 2048² frame, like every segment setting),
then upsampled to the image. Trained by `hpa-scc train-segmenter` on generated images only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import InputError
from hpa_scc.segment.label_cell import label_nuclei_and_cells
from hpa_scc.segment.labels import REFERENCE_SIDE, Segmentation, check_rgby, upsample_labels

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "unet.weights.h5"  # Keras weights (training's output)
SHIPPED_ONNX = SHIPPED_WEIGHTS.with_name("unet.onnx")  # the same network for ONNX Runtime (what the backend runs)
INPUT_CHANNELS = (0, 3, 2)  # red, yellow, blue of an RGBY image
FLAT = 1e-3  # a blue plane whose range is below this (in [0, 1] units) holds no nucleus
DEPTH = 4  # poolings: the working side is padded to a multiple of 2**DEPTH


def build_unet(base: int = 8):
    """Keras U-Net: float32 B x H x W x 3 -> B x H x W x 6 (nuclei softmax 0-2, cells softmax 3-5)."""
    import keras  # the TensorFlow stack: only this backend and its training need it
    from keras import layers

    def block(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        return x

    inputs = keras.Input((None, None, len(INPUT_CHANNELS)))
    skips, x = [], inputs
    for level in range(DEPTH):
        x = block(x, base * 2 ** level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = block(x, base * 2 ** DEPTH)
    for level in reversed(range(DEPTH)):
        x = layers.UpSampling2D()(x)
        x = layers.Concatenate()([x, skips[level]])
        x = block(x, base * 2 ** level)
    nuclei = layers.Conv2D(3, 1, activation="softmax", name="nuclei")(x)
    cells = layers.Conv2D(3, 1, activation="softmax", name="cells")(x)
    return keras.Model(inputs, layers.Concatenate()([nuclei, cells]))


def unet_input(rgby: np.ndarray, side: int) -> np.ndarray:
    """RGBY float H x W x 4 -> float32 h x w x 3 network input: the whole frame resized so that its
    geometric-mean side is `side` (never enlarged more than needed), each plane at its 99.5th percentile = 1."""
    height, width = rgby.shape[:2]
    scale = side / float(np.sqrt(height * width))
    shape = (max(16, round(width * scale)), max(16, round(height * scale)))
    small = cv2.resize(rgby[..., list(INPUT_CHANNELS)], shape, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = np.percentile(small.reshape(-1, 3), 99.5, axis=0)
    return (small / np.maximum(top, 1e-6)).astype(np.float32)


def _pad(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    multiple = 2 ** DEPTH
    height, width = x.shape[:2]
    pad = (-height % multiple, -width % multiple)
    return np.pad(x, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="reflect"), (height, width)


def probabilities_to_maps(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """h x w x 6 softmax output -> (nuclei_pred, cell_pred) uint8 h x w x 3 hpacellseg maps (channel 0
    unused, 1 border, 2 interior, x 255)."""
    maps = []
    for offset in (0, 3):
        pred = np.zeros(probs.shape[:2] + (3,), np.uint8)
        pred[..., 1:] = np.clip(np.rint(probs[..., offset + 1:offset + 3] * 255), 0, 255)
        maps.append(pred)
    return maps[0], maps[1]


def label_working_maps(nuclei_pred: np.ndarray, cell_pred: np.ndarray, shape: tuple[int, int],
                       neck_split: float = 0.0) -> Segmentation:
    """hpacellseg maps of a whole frame at any side (uint8 h x w x 3) -> Segmentation at `shape`:
    label_cell's algorithm with its areas scaled to the maps' frame (px of a 2048² frame), nuclei split
    at necks when `neck_split` > 0, then upsampled."""
    area_scale = nuclei_pred.shape[0] * nuclei_pred.shape[1] / float(REFERENCE_SIDE ** 2)
    nuclei, cells = label_nuclei_and_cells(nuclei_pred, cell_pred, area_scale, False, neck_split)
    return Segmentation(upsample_labels(cells, shape).astype(np.uint16), upsample_labels(nuclei, shape).astype(np.uint16))


class UnetBackend:
    """RGBY float H x W x 4 in [0, 1] -> Segmentation with the project's U-Net and label_cell's algorithm.
    Runs a NAME.onnx with ONNX Runtime (no TensorFlow start-up: ~0.2 s a 512² frame on one core), or
    NAME.weights.h5 with Keras."""

    def __init__(self, cfg: SegmentConfig):
        path = Path(cfg.unet_weights) if cfg.unet_weights else SHIPPED_ONNX
        if not path.is_file():
            raise InputError(f"segment.unet_weights: {path} does not exist (train one with `hpa-scc train-segmenter`, "
                             "or use segment.backend=classical)")
        self.cfg = cfg
        try:
            self._run = _onnx_runner(path) if path.suffix == ".onnx" else _keras_runner(path, cfg.unet_base)
        except Exception as exc:  # noqa: BLE001 - h5, ONNX and shape errors alike: one line naming the file
            raise InputError(f"{path} is not a U-Net of this project (segment.unet_base {cfg.unet_base}; "
                             f"{type(exc).__name__})") from None

    def working_maps(self, rgby: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nuclei_pred, cell_pred): uint8 h x w x 3 maps at the working side."""
        x, (height, width) = _pad(unet_input(rgby, self.cfg.unet_side))
        probs = self._run(x[None])[0, :height, :width]
        if self.cfg.unet_map_smooth > 0:
            probs = cv2.GaussianBlur(probs, (0, 0), self.cfg.unet_map_smooth)
        return probabilities_to_maps(probs)

    def __call__(self, rgby: np.ndarray) -> Segmentation:
        check_rgby(rgby)
        blue = rgby[..., 2]
        if float(blue.max()) - float(blue.min()) < FLAT:  # no nucleus can stand out: no cells (not noise scaled up)
            empty = np.zeros(rgby.shape[:2], np.uint16)
            return Segmentation(empty, empty.copy())
        return label_working_maps(*self.working_maps(rgby), rgby.shape[:2], self.cfg.unet_neck_split)


def _onnx_runner(path: Path):
    import onnxruntime as ort  # only this backend needs it; the classical segmenter's workers stay light

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # segmentation runs one image per worker process
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _keras_runner(path: Path, base: int):
    model = build_unet(base)
    model.load_weights(path)
    return lambda x: np.asarray(model(x, training=False))


def export_unet_onnx(model, out: Path, tolerance: float = 1e-4) -> float:
    """Write a Keras U-Net (`build_unet`) as ONNX to `out`; returns max |ONNX - Keras| on a random
    frame (InputError above `tolerance`)."""
    import onnxruntime as ort  # export only

    probe = np.random.default_rng(0).uniform(0, 1.5, (1, 256, 256, len(INPUT_CHANNELS))).astype(np.float32)
    expected = np.asarray(model(probe, training=False))
    staged = out.parent / f".{out.name}.tmp.onnx"
    model.export(str(staged), format="onnx", verbose=False)
    session = ort.InferenceSession(str(staged), providers=["CPUExecutionProvider"])
    diff = float(np.abs(session.run(None, {session.get_inputs()[0].name: probe})[0] - expected).max())
    if diff > tolerance:
        staged.unlink()
        raise InputError(f"U-Net ONNX export differs from Keras by {diff:.2e} (> {tolerance:.0e})")
    staged.replace(out)
    return diff
