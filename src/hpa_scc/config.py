"""Typed configuration: a frozen dataclass tree loaded from `configs/*.yaml`.

    cfg = load_config("configs/demo.yaml", overrides=["train.epochs=2"])

Unknown keys are rejected with a ConfigError naming the dotted key; values are converted to
the declared types (int, float, bool, str, optional, tuples). CLI flags are applied as
overrides, so the resolved config a run saves is the one it used. Sizes and areas of the
segmentation stage are given for a 2048x2048 image and scaled with the image side.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class PathsConfig:
    """Where a run reads and writes; relative paths are relative to the working directory."""

    data: str = "data/demo"  # synthetic data set (train/, test/, train.csv, ...)
    masks: str = "data/demo/masks"  # segmentation cache
    run: str = "runs/demo"  # training output
    submission: str = "submissions/demo.csv"
    report: str = "reports/demo"


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic HPA-like data with cell-level truth (see synth.py)."""

    n_train: int = 24
    n_test: int = 8
    sizes: tuple[int, ...] = (432, 512, 768)  # image sides, px (real: 1728, 2048, 3072)
    fraction_16bit: float = 0.3  # share of images written as 16-bit PNGs
    cells_min: int = 8
    cells_max: int = 24
    cell_radius: float = 0.11  # mean cell radius as a fraction of the image side
    nucleus_ratio: float = 0.45  # nucleus radius / cell radius
    labels_per_image: tuple[float, ...] = (0.48, 0.41, 0.11)  # P(1, 2, 3 patterns)
    # Pattern frequencies: P(class) ~ real_frequency ** (1 - class_balance); 0 = the real train.csv
    # frequencies (class 11 on 0.4% of images), 1 = every class 0-17 equally often.
    class_balance: float = 0.0
    classes: tuple[int, ...] = ()  # draw patterns only from these classes (0-17); empty = all
    p_express: float = 0.75  # chance that a cell shows each of its image's patterns
    p_negative_image: float = 0.02  # chance that an image shows no pattern at all
    noise: float = 0.02  # Gaussian noise sigma, in [0, 1] intensity units
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.n_train < 0 or self.n_test < 0:
            raise ConfigError("synth.n_train and synth.n_test must be >= 0")
        if not self.sizes or min(self.sizes) < 64:
            raise ConfigError("synth.sizes must list image sides of at least 64 px")
        if not 1 <= self.cells_min <= self.cells_max:
            raise ConfigError("synth.cells_min must be in 1..synth.cells_max")
        if not 0.0 <= self.p_express <= 1.0:
            raise ConfigError("synth.p_express must be in [0, 1]")
        if any(not 0 <= c <= 17 for c in self.classes):
            raise ConfigError("synth.classes must list pattern classes 0-17 (Negative is drawn separately)")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ConfigError("synth.class_balance must be in [0, 1]")


@dataclass(frozen=True)
class SegmentConfig:
    """Segmentation settings. Areas are in px at 2048x2048 and scale with the image area."""

    backend: str = "classical"  # classical | hpacellseg
    scale: float = 0.25  # work at this fraction of the full resolution
    min_work_side: int = 512  # ... but never below this side (px), for small images
    nucleus_min_area: int = 2500
    cell_min_area: int = 5500
    nucleus_smooth: float = 2.0  # Gaussian sigma before thresholding, px at 0.25 x 2048
    nucleus_threshold: float = 1.0  # 1 = Otsu; 0 = background level (see segment._threshold)
    split_min_distance: int = 20  # min distance between nucleus seeds, px at 2048
    split_footprint: float = 1.0  # h-maxima depth as a fraction of a typical nucleus radius
    # Cell foreground: the smoothed red + yellow (+ blue) signal, normalised to its 99.5th percentile,
    # above a cut between background (0) and Otsu (1) of log(signal + cell_signal_floor). In log space
    # the faint cytoplasm at a cell's edge counts as cell; a linear Otsu cut in dense fields fell
    # between bright and dim cytoplasm (README, segmentation).
    cell_threshold: float = 1.0
    cell_signal_floor: float = 0.001
    # Cell signal = these weights x the red, yellow and blue planes, each scaled so that its
    # normalise_percentile-th percentile is 1 (robust to bit depth and exposure).
    cell_channel_weights: tuple[float, ...] = (0.45, 0.45, 0.1)
    normalise_percentile: float = 99.5
    cell_smooth: float = 2.0  # Gaussian sigma of the cell signal, px at 0.25 x 2048
    distance_smooth: float = 1.0  # Gaussian sigma of the nucleus distance map before splitting, px at 0.25 x 2048
    nucleus_open: int = 3  # side (px at working scale) of the square that opens the nucleus mask
    # Watershed landscape of the cells: -signal + cell_distance_weight x distance to the nearest
    # nucleus / cell_max_distance (keeps a cell from leaking far past a neighbour's nucleus).
    cell_distance_weight: float = 0.5
    # hpacellseg post-processing of the U-Nets' [background, border, object] maps (labels_from_probabilities):
    seed_threshold: float = 0.4  # nucleus seeds: object - border above this
    nucleus_prob_threshold: float = 0.5  # nucleus pixels: object + border above this
    cell_background_threshold: float = 0.5  # cell pixels: background probability below this
    cell_close: int = 5  # side (px) of the square that closes the cell foreground
    cell_max_distance: int = 400  # a cell reaches at most this far from its nucleus, px at 2048
    nuclei_model: Optional[str] = None  # hpacellseg nuclei U-Net weights (local file)
    cell_model: Optional[str] = None  # hpacellseg cell U-Net weights (local file)
    workers: int = 2

    def __post_init__(self) -> None:
        if self.backend not in ("classical", "hpacellseg"):
            raise ConfigError(f"segment.backend must be classical or hpacellseg, got {self.backend!r}")
        if not 0.05 <= self.scale <= 1.0:
            raise ConfigError("segment.scale must be in [0.05, 1]")
        if len(self.cell_channel_weights) != 3:
            raise ConfigError("segment.cell_channel_weights must list 3 weights (red, yellow, blue)")


@dataclass(frozen=True)
class CropConfig:
    """Cell crops fed to the model."""

    size: int = 128  # crop side, px
    zero_background: bool = True  # zero pixels outside the cell
    padding: float = 0.05  # extra margin around the bounding box, fraction of its side


@dataclass(frozen=True)
class ModelConfig:
    """EfficientNetB0 classifier."""

    backbone: str = "keras"  # keras (keras.applications) | efficientnet (efficientnet.tfkeras)
    channels: int = 4  # 4 = RGBY, 3 = RGB
    size: int = 128  # input side, px
    dropout: float = 0.3
    weights: Optional[str] = None  # local .h5/.weights.h5 file with ImageNet/noisy-student weights
    # BatchNormalization moving-statistics momentum. Keras' 0.99 averages over ~100 steps and
    # starts from variance 1: a short run from random init then normalises with stale statistics.
    bn_momentum: float = 0.9
    # From random init only (ignored with model.weights): start each residual block as the identity
    # (its last BatchNormalization scale = 0), and the stochastic-depth rate of the blocks (Keras: 0.2).
    zero_init_residual: bool = True
    drop_connect: float = 0.0
    # Input normalisation of a model without pretrained weights: `data` = per-channel mean/std of
    # the training crops (stored in the model), `none` = inputs only scaled to [0, 1].
    input_norm: str = "data"

    def __post_init__(self) -> None:
        if self.backbone not in ("keras", "efficientnet"):
            raise ConfigError(f"model.backbone must be keras or efficientnet, got {self.backbone!r}")
        if self.channels not in (3, 4):
            raise ConfigError(f"model.channels must be 3 or 4, got {self.channels}")
        if self.size < 32:
            raise ConfigError(f"model.size must be >= 32, got {self.size}")
        if not 0.0 <= self.drop_connect < 1.0:
            raise ConfigError(f"model.drop_connect must be in [0, 1), got {self.drop_connect}")
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ConfigError(f"model.bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if self.input_norm not in ("data", "none"):
            raise ConfigError(f"model.input_norm must be data or none, got {self.input_norm!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation, with the parameters of Keras' ImageDataGenerator users know."""

    enabled: bool = True
    rotation: float = 30.0  # degrees
    shift: float = 0.15  # fraction of the side
    flip: bool = True  # horizontal and vertical flips
    rot90: bool = True  # random multiples of 90 degrees (exact, cheap; cells have no up)
    brightness: tuple[float, float] = (0.5, 1.5)
    zoom: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Training on weak image-level labels."""

    mode: str = "cells"  # cells | image | truth | mil (bags of an image's cells, see below)
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    val_fraction: float = 0.2
    loss: str = "focal"  # bce | weighted_bce | focal
    focal_gamma: float = 2.0
    pseudo_rounds: int = 0
    pseudo_keep: float = 0.5  # keep an image label on a cell when its score >= this x the image max
    pseudo_min: float = 0.2  # ... and >= this absolute score
    early_stopping: int = 5  # patience in epochs (0 = off)
    lr_schedule: str = "cosine"  # cosine: linear warm-up, then cosine decay to 0 over a round | plateau
    warmup_epochs: float = 1.0  # cosine warm-up length, epochs
    reduce_lr: int = 2  # plateau: ReduceLROnPlateau patience in epochs
    strategy: str = "default"  # default | mirrored | multiworker | tpu
    max_cells_per_image: int = 64
    # Images whose crops are held in memory together; training shuffles cells and MIL bags within
    # such windows (reads stay cheap and memory bounded; a window mixes many images per batch).
    shuffle_window: int = 32
    # Out-of-fold pseudo-labels (with pseudo_rounds >= 1): >= 2 folds by image; each fold's model,
    # trained on the other folds, relabels the held-out images' cells (pseudo_keep / pseudo_min);
    # the final model trains on those labels. 0 = in-sample rounds (the model relabels its own cells).
    pseudo_folds: int = 0
    # Multiple-instance learning (mode mil): a batch holds batch_size // mil_bag_size bags, each
    # mil_bag_size cells of one image (an epoch deals every image's cells into bags); the per-cell
    # outputs are pooled into an image prediction that the image labels supervise, plus
    # mil_cell_weight x the inherited-label loss on every cell. Inference scores each cell alone.
    mil_bag_size: int = 4  # small bags: a CPU batch of 32 cells then mixes 8 images
    mil_pooling: str = "lse"  # mean | max | lse (log-sum-exp of the logits, sharpness mil_lse_r) | attention
    mil_lse_r: float = 5.0
    mil_cell_weight: float = 0.1
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("cells", "image", "truth", "mil"):
            raise ConfigError(f"train.mode must be cells, image, truth or mil, got {self.mode!r}")
        if self.mil_pooling not in ("mean", "max", "lse", "attention"):
            raise ConfigError(f"train.mil_pooling must be mean, max, lse or attention, got {self.mil_pooling!r}")
        if self.mil_bag_size < 1 or self.mil_lse_r <= 0 or self.mil_cell_weight < 0:
            raise ConfigError("train.mil_bag_size must be >= 1, train.mil_lse_r > 0, train.mil_cell_weight >= 0")
        if self.pseudo_folds == 1 or self.pseudo_folds < 0:
            raise ConfigError("train.pseudo_folds must be 0 (in-sample pseudo-labels) or >= 2")
        if self.mode == "mil" and self.pseudo_rounds and not self.pseudo_folds:
            raise ConfigError("train.mode mil takes out-of-fold pseudo-labels only (set train.pseudo_folds >= 2)")
        if self.lr_schedule not in ("cosine", "plateau"):
            raise ConfigError(f"train.lr_schedule must be cosine or plateau, got {self.lr_schedule!r}")
        if self.loss not in ("bce", "weighted_bce", "focal"):
            raise ConfigError(f"train.loss must be bce, weighted_bce or focal, got {self.loss!r}")
        if self.strategy not in ("default", "mirrored", "multiworker", "tpu"):
            raise ConfigError(f"train.strategy unknown: {self.strategy!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.shuffle_window < 1:
            raise ConfigError("train.epochs, train.batch_size and train.shuffle_window must be >= 1")


@dataclass(frozen=True)
class PredictConfig:
    """Per-cell inference and blending."""

    engine: str = "keras"  # keras | onnx
    batch_size: int = 64
    # Without a GPU batches are capped at this: on a CPU a larger batch is no faster and costs memory
    # (one 3072² image, 224 px model: peak RSS 2.9 GB at batch 128, 1.3 GB at 32; `bench predict-memory`).
    cpu_batch_size: int = 32
    cell_weight: float = 0.7  # final = w * cell + (1 - w) * image (blend: linear)
    blend: str = "linear"  # linear | product
    tta: bool = False  # average with horizontal/vertical flips
    tta_rot90: bool = False  # with tta: all 8 flips and 90-degree turns (cells have no orientation)
    min_confidence: float = 0.0  # drop (cell, label) triples below this
    negative: str = "predicted"  # predicted | derived (1 - max of the other labels)
    image_score: str = "whole"  # whole (whole-image pass) | cell_mean | cell_max (over the image's cells)
    # | others_mean (per cell: the mean of the image's *other* cells; a one-cell image uses its own)
    border_weight: float = 1.0  # final scores of cells touching the image edge x this (1 = off)
    faint_weight: float = 1.0  # final scores of faint cells x this (1 = off) ...
    faint_fraction: float = 0.3  # ... a cell is faint when its mean blue (nucleus) signal is below this x the image's median cell
    image_model: Optional[str] = None  # RUNDIR of a separate image-level model for `whole` (default: the cell model)
    workers: int = 2  # processes preparing images (read, segment, crop, encode); 0 = in the main process
    prefetch: int = 4  # images prepared ahead of the model

    def __post_init__(self) -> None:
        if self.engine not in ("keras", "onnx"):
            raise ConfigError(f"predict.engine must be keras or onnx, got {self.engine!r}")
        if not 0.0 <= self.cell_weight <= 1.0:
            raise ConfigError("predict.cell_weight must be in [0, 1]")
        if self.blend not in ("linear", "product"):
            raise ConfigError(f"predict.blend must be linear or product, got {self.blend!r}")
        if self.negative not in ("predicted", "derived"):
            raise ConfigError(f"predict.negative must be predicted or derived, got {self.negative!r}")
        if self.image_score not in ("whole", "cell_mean", "cell_max", "others_mean"):
            raise ConfigError(f"predict.image_score must be whole, cell_mean, cell_max or others_mean, got {self.image_score!r}")
        if not (0.0 <= self.border_weight <= 1.0 and 0.0 <= self.faint_weight <= 1.0 and 0.0 <= self.faint_fraction <= 1.0):
            raise ConfigError("predict.border_weight, predict.faint_weight and predict.faint_fraction must be in [0, 1]")
        if self.batch_size < 1 or self.cpu_batch_size < 1 or self.workers < 0 or self.prefetch < 1:
            raise ConfigError("predict.batch_size, predict.cpu_batch_size and predict.prefetch must be >= 1, "
                              "predict.workers >= 0")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError("predict.min_confidence must be in [0, 1]")


@dataclass(frozen=True)
class ScoreConfig:
    """Competition metric settings."""

    iou: float = 0.6
    strict: bool = False  # count detections of unverified classes as false positives


@dataclass(frozen=True)
class PrepareConfig:
    """`hpa-scc prepare`: the training set's crops written once, in shards."""

    shard_images: int = 32  # images a shard file holds (its crops load into memory together)
    shards_in_memory: int = 2  # shards training keeps loaded at once (its shuffling window)

    def __post_init__(self) -> None:
        if self.shard_images < 1 or self.shards_in_memory < 1:
            raise ConfigError("prepare.shard_images and prepare.shards_in_memory must be >= 1")


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML value to the type `hint`, raising ConfigError naming `key`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        item_types = [args[0]] * len(value) if (len(args) == 2 and args[1] is Ellipsis) else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"config key {key!r} must have {len(item_types)} items, got {len(value)}")
        return tuple(_convert(v, t, key) for v, t in zip(value, item_types))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        try:
            converted = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} must be {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return converted
    if hint is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a dict, rejecting keys it does not declare."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + str(unknown[0])!r} (known keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(names))})"
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def config_from_dict(values: dict, overrides: Optional[list[str]] = None) -> Config:
    """Build a Config from nested dicts plus "section.key=value" overrides (YAML values)."""
    tree = _deep_copy(values or {})
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return _build(Config, tree)


def _deep_copy(values: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in values.items()}


def packaged_configs() -> Path:
    """The folder of the config files shipped inside the package (`configs/` links to it)."""
    return Path(__file__).resolve().parent / "configs"


def resolve_config_path(path: str | Path) -> Path:
    """A config file on disk, or else the shipped file of that name (`default.yaml`,
    `configs/default.yaml`): after a wheel install the project's configs/ folder is not there."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = packaged_configs() / path.name
    if path.suffix in (".yaml", ".yml") and path.parent in (Path("."), Path("configs")) and shipped.is_file():
        return shipped
    available = ", ".join(sorted(p.name for p in packaged_configs().glob("*.yaml")))
    raise ConfigError(f"config file {path} does not exist (shipped configs: {available})")


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config file (None = built-in defaults) and apply overrides. `path` may name a
    shipped config (`default.yaml`, `configs/cpu.yaml`) from any working directory."""
    values: dict = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        values = loaded or {}
    try:
        return config_from_dict(values, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def config_to_dict(cfg: Any) -> dict:
    """Config -> plain nested dict (tuples as lists), suitable for YAML."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from .io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace, re-exported for frozen config sections."""
    return dataclasses.replace(cfg, **changes)
