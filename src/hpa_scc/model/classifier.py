"""EfficientNetB0 multi-label classifier: 19 sigmoid outputs.

    model = build_classifier(cfg.model)   # input float32 B x S x S x C in [0, 255]

Backbones: `keras` (keras.applications.EfficientNetB0, rescales [0, 255] inside the model) and
`efficientnet` (efficientnet.tfkeras.EfficientNetB0, which expects normalised input: this
builder adds Rescaling(1/255) + ImageNet mean/std normalisation in front, so both take
[0, 255]). Channels: 3 (RGB) or 4 (RGBY; the stem convolution takes 4 input planes).
Weights: none by default; a local ImageNet / noisy-student weight file is loaded into a
3-channel copy and transferred, the 4th input plane of the stem getting the mean of the RGB
kernels. Nothing is downloaded.

Training from random initialisation needs two things Keras' defaults do not give
(`model.input_norm`, `model.bn_momentum`): inputs normalised to unit variance per channel (RGBY
cell crops are dark, mostly-zero images: scaled to [0, 1] their stem activations have variance
~0.002, while a BatchNormalization layer's moving variance starts at 1), and a momentum that
lets the moving statistics catch up within a short run. Without them the inference-mode outputs
are the same for every input. The per-channel statistics are stored in the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import keras
import numpy as np
from keras import layers

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.config_learning import ModelConfig
from hpa_scc.core.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406, 0.45)


IMAGENET_STD = (0.229, 0.224, 0.225, 0.225)


def _backbone(cfg: ModelConfig, channels: int):
    shape = (cfg.size, cfg.size, channels)
    if cfg.backbone == "keras":
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


def layers_of_type(model, kind) -> list:
    """Every layer of class `kind` in `model`, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, kind):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(layers_of_type(layer, kind))
    return found


def set_batchnorm_momentum(model, momentum: float) -> None:
    """Set the moving-statistics momentum of every BatchNormalization layer (before compiling)."""
    for layer in layers_of_type(model, layers.BatchNormalization):
        layer.momentum = momentum


def _prepare_random_init(backbone, cfg: ModelConfig) -> None:
    """Settings that make a randomly initialised EfficientNet train fast: every residual block
    starts as the identity (zero scale on the BatchNormalization before its `add`), and the blocks'
    stochastic depth (Dropout layers named `*drop`) gets rate `cfg.drop_connect` (Keras: up to 0.2)."""
    names = {layer.name for layer in backbone.layers}
    for layer in backbone.layers:
        if isinstance(layer, layers.Dropout) and layer.name.endswith("drop"):
            layer.rate = cfg.drop_connect
        if cfg.zero_init_residual and layer.name.endswith("add") and layer.name[:-3] + "project_bn" in names:
            gamma = backbone.get_layer(layer.name[:-3] + "project_bn").gamma
            gamma.assign(np.zeros(gamma.shape, gamma.dtype))


def _set_normalization(layer, mean: np.ndarray, variance: np.ndarray) -> None:
    """Store per-channel mean/variance in a Keras Normalization layer built without them."""
    layer.adapt_mean.assign(np.asarray(mean, np.float32))
    layer.adapt_variance.assign(np.asarray(variance, np.float32))
    layer.finalize_state()


def build_classifier(cfg: ModelConfig, input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None):
    """Keras model: float32 B x S x S x C in [0, 255] -> B x 19 sigmoid probabilities.

    input_stats: per-channel (mean, std) of the training pixels in [0, 1] units, each (C,); used
    when the model has no pretrained weights and `cfg.input_norm` is `data`.
    """
    use_data_stats = input_stats is not None and not cfg.weights and cfg.input_norm == "data"
    if use_data_stats:
        mean = np.asarray(input_stats[0], np.float32).reshape(cfg.channels)
        variance = np.square(np.maximum(np.asarray(input_stats[1], np.float32), cfg.input_std_floor)).reshape(cfg.channels)
    backbone = _backbone(cfg, cfg.channels)
    if not cfg.weights:
        _prepare_random_init(backbone, cfg)
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
        if use_data_stats:
            x = layers.Normalization(mean=mean.tolist(), variance=variance.tolist())(x)
        else:
            x = layers.Normalization(mean=IMAGENET_MEAN[: cfg.channels], variance=np.square(IMAGENET_STD[: cfg.channels]))(x)
    elif use_data_stats:  # keras.applications: Rescaling(1/255) then an (unadapted) Normalization inside
        _set_normalization(layers_of_type(backbone, layers.Normalization)[0], mean, variance)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(cfg.dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="sigmoid", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"b0_{cfg.backbone}_{cfg.channels}ch")
    set_batchnorm_momentum(model, cfg.bn_momentum)
    return model


def load_classifier(path: str | Path):
    """Load a saved `.keras` model in Keras safe mode; InputError if it is not one."""
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
