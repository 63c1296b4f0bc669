"""EfficientNetB0 multi-label classifier: 19 sigmoid outputs.

    model = build_classifier(cfg.model)   # input float32 B x S x S x C in [0, 255]

Backbones: `keras` (keras.applications.EfficientNetB0, rescales [0, 255] inside the model) and
`efficientnet` (efficientnet.tfkeras.EfficientNetB0, which expects normalised input: this
builder adds Rescaling(1/255) + ImageNet mean/std normalisation in front, so both take
[0, 255]). Channels: 3 (RGB) or 4 (RGBY; the stem convolution takes 4 input planes).
Weights: none by default; a local ImageNet / noisy-student weight file is loaded into a
3-channel copy and transferred, the 4th input plane of the stem getting the mean of the RGB
kernels. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classes import NUM_CLASSES
from .config import ModelConfig
from .errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406, 0.45)
IMAGENET_STD = (0.229, 0.224, 0.225, 0.225)


def _backbone(cfg: ModelConfig, channels: int):
    shape = (cfg.size, cfg.size, channels)
    if cfg.backbone == "keras":
        import keras

        return keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=shape)
    try:
        import efficientnet.tfkeras as efn
    except ImportError:
        raise InputError("model.backbone efficientnet needs the `efficientnet` package (pip install efficientnet==1.1.1)") from None
    return efn.EfficientNetB0(include_top=False, weights=None, input_shape=shape)


def _transfer_weights(source, target) -> None:
    """Copy weights layer by layer; a stem kernel with more input planes gets their mean."""
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        other = by_name.get(layer.name)
        if other is None or not other.get_weights():
            continue
        weights = []
        for mine, theirs in zip(layer.get_weights(), other.get_weights()):
            if mine.shape == theirs.shape:
                weights.append(theirs)
            elif mine.ndim == 4 and mine.shape[:2] == theirs.shape[:2] and mine.shape[3] == theirs.shape[3]:
                extra = np.repeat(theirs.mean(axis=2, keepdims=True), mine.shape[2] - theirs.shape[2], axis=2)
                weights.append(np.concatenate([theirs, extra], axis=2))
            elif mine.ndim == 1 and theirs.ndim == 1 and mine.shape[0] > theirs.shape[0]:  # normalisation stats
                weights.append(np.concatenate([theirs, np.full(mine.shape[0] - theirs.shape[0], theirs.mean(), mine.dtype)]))
            else:
                weights.append(mine)
        layer.set_weights(weights)


def build_classifier(cfg: ModelConfig):
    """Keras model: float32 B x S x S x C in [0, 255] -> B x 19 sigmoid probabilities."""
    import keras
    from keras import layers

    backbone = _backbone(cfg, cfg.channels)
    if cfg.weights:
        path = Path(cfg.weights)
        if not path.is_file():
            raise InputError(f"model.weights {path} does not exist (weights are local files; nothing is downloaded)")
        source = _backbone(cfg, 3)
        try:
            source.load_weights(str(path), skip_mismatch=True) if path.suffix == ".h5" else source.load_weights(str(path))
        except Exception as exc:  # Keras raises several types for a wrong file
            raise InputError(f"model.weights {path}: cannot load into EfficientNetB0 ({exc})") from None
        _transfer_weights(source, backbone)
    inputs = keras.Input((cfg.size, cfg.size, cfg.channels), name="crop")
    x = inputs
    if cfg.backbone == "efficientnet":
        x = layers.Rescaling(1.0 / 255.0)(x)
        x = layers.Normalization(mean=IMAGENET_MEAN[: cfg.channels], variance=np.square(IMAGENET_STD[: cfg.channels]))(x)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(cfg.dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="sigmoid", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"b0_{cfg.backbone}_{cfg.channels}ch")


def load_classifier(path: str | Path):
    """Load a saved `.keras` model in Keras safe mode; InputError if it is not one."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:
        raise InputError(f"{path} is not a loadable Keras model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if tuple(model.output_shape[1:]) != (NUM_CLASSES,):
        raise InputError(f"{path}: model outputs {model.output_shape[1:]}, expected ({NUM_CLASSES},)")
    return model
