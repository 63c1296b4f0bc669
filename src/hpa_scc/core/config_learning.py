"""Config sections of the learning stages: the classifier, augmentation, training and prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from hpa_scc.core.errors import ConfigError
from hpa_scc.core.ranges import check_ranges

# predict.negative: the model's own Negative output, or one derived from the 18 other labels
NEGATIVE_RULES = ("predicted", "derived", "derived_max")


@dataclass(frozen=True)
class ModelConfig:
    """EfficientNetB0 classifier."""

    RANGES: ClassVar[dict[str, str]] = {"dropout": "[0, 1)", "input_std_floor": "(0, inf)", "bn_momentum": "[0, 1)"}

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
    input_std_floor: float = 1e-3  # per-channel std of the `data` normalisation is at least this (a near-empty channel)

    def __post_init__(self) -> None:
        check_ranges(self, "model")
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

    RANGES: ClassVar[dict[str, str]] = {"epochs": "[1, inf)", "batch_size": "[1, inf)", "learning_rate": "(0, inf)",
        "val_fraction": "[0, 1)", "focal_gamma": "[0, inf)", "class_weight_max": "(0, inf)",
        "pseudo_rounds": "[0, inf)", "pseudo_keep": "[0, 1]", "pseudo_min": "[0, 1]", "early_stopping": "[0, inf)",
        "warmup_epochs": "[0, inf)", "reduce_lr_factor": "(0, 1)", "max_cells_per_image": "[1, inf)",
        "shuffle_window": "[1, inf)", "shuffle_buffer": "[1, inf)", "statistics_crops": "[1, inf)",
        "pseudo_folds": "[0, inf)", "mil_bag_size": "[1, inf)", "mil_lse_r": "(0, inf)",
        "mil_attention_units": "[1, inf)", "mil_cell_weight": "[0, inf)"}

    mode: str = "cells"  # cells | image | truth | mil (bags of an image's cells, see below)
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    val_fraction: float = 0.2
    loss: str = "focal"  # bce | weighted_bce | focal
    class_weight_max: float = 50.0  # weighted_bce: positive weight per class, (negatives / positives) capped at this
    focal_gamma: float = 2.0
    pseudo_rounds: int = 0
    pseudo_keep: float = 0.5  # keep an image label on a cell when its score >= this x the image max
    pseudo_min: float = 0.2  # ... and >= this absolute score
    early_stopping: int = 5  # patience in epochs (0 = off)
    lr_schedule: str = "cosine"  # cosine: linear warm-up, then cosine decay to 0 over a round | plateau
    warmup_epochs: float = 1.0  # cosine warm-up length, epochs
    reduce_lr: int = 2  # plateau: ReduceLROnPlateau patience in epochs
    reduce_lr_factor: float = 0.5  # plateau: the learning rate is multiplied by this
    strategy: str = "default"  # default | mirrored | multiworker | tpu
    max_cells_per_image: int = 64
    # Images whose crops are held in memory together; training shuffles cells and MIL bags within
    # such windows (reads stay cheap and memory bounded; a window mixes many images per batch).
    shuffle_window: int = 32
    shuffle_buffer: int = 1024  # cells mode: tf.data shuffle buffer (crops) on top of the windowed order
    statistics_crops: int = 512  # crops (spread evenly over the training set) that set the input normalisation
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
    mil_attention_units: int = 64  # attention pooling: width of the tanh layer that scores each cell
    mil_cell_weight: float = 0.1
    # Ensemble: >= 2 trains that many models of these settings (seeds seed, seed + 1, ...; each its
    # own validation split) into RUN/members/m{i}; RUN/model.keras averages their outputs.
    members: int = 1
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        check_ranges(self, "train")
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
        if self.members < 1:
            raise ConfigError(f"train.members must be >= 1 (1 = one model, no ensemble), got {self.members}")


@dataclass(frozen=True)
class PredictConfig:
    """Per-cell inference and blending."""

    RANGES: ClassVar[dict[str, str]] = {"cell_weight": "[0, 1]", "min_confidence": "[0, 1]",
                                        "onnx_threads": "[0, 256]"}

    engine: str = "keras"  # keras | onnx
    # ONNX Runtime threads per forward pass (0 = one per core). While predict.workers processes
    # prepare the next images on the same cores, 1 keeps them from fighting (`bench predict`).
    onnx_threads: int = 0
    batch_size: int = 64
    # Without a GPU batches are capped at this: on a CPU a larger batch is no faster and costs memory
    # (one 3072² image, 224 px model: peak RSS 2.9 GB at batch 128, 1.3 GB at 32; `bench predict-memory`).
    cpu_batch_size: int = 32
    cell_weight: float = 0.7  # final = w * cell + (1 - w) * image (blend: linear)
    blend: str = "linear"  # linear | product
    tta: bool = False  # average with horizontal/vertical flips
    tta_rot90: bool = False  # with tta: all 8 flips and 90-degree turns (cells have no orientation)
    min_confidence: float = 0.0  # drop (cell, label) triples below this
    negative: str = "predicted"  # predicted | derived (prod(1 - p) of the 18 other labels) | derived_max (1 - their max)
    image_score: str = "whole"  # whole (whole-image pass) | cell_mean | cell_max (over the image's cells)
    # | others_mean (per cell: the mean of the image's *other* cells; a one-cell image uses its own)
    border_weight: float = 1.0  # final scores of cells touching the image edge x this (1 = off)
    faint_weight: float = 1.0  # final scores of faint cells x this (1 = off) ...
    faint_fraction: float = 0.3  # ... a cell is faint when its mean blue (nucleus) signal is below this x the image's median cell
    image_model: Optional[str] = None  # RUNDIR of a separate image-level model for `whole` (default: the cell model)
    workers: int = 2  # processes preparing images (read, segment, crop, encode); 0 = in the main process
    prefetch: int = 4  # images prepared ahead of the model

    def __post_init__(self) -> None:
        check_ranges(self, "predict")
        if self.engine not in ("keras", "onnx"):
            raise ConfigError(f"predict.engine must be keras or onnx, got {self.engine!r}")
        if not 0.0 <= self.cell_weight <= 1.0:
            raise ConfigError("predict.cell_weight must be in [0, 1]")
        if self.blend not in ("linear", "product"):
            raise ConfigError(f"predict.blend must be linear or product, got {self.blend!r}")
        if self.negative not in NEGATIVE_RULES:
            raise ConfigError(f"predict.negative must be one of {', '.join(NEGATIVE_RULES)}, got {self.negative!r}")
        if self.image_score not in ("whole", "cell_mean", "cell_max", "others_mean"):
            raise ConfigError(f"predict.image_score must be whole, cell_mean, cell_max or others_mean, got {self.image_score!r}")
        if not (0.0 <= self.border_weight <= 1.0 and 0.0 <= self.faint_weight <= 1.0 and 0.0 <= self.faint_fraction <= 1.0):
            raise ConfigError("predict.border_weight, predict.faint_weight and predict.faint_fraction must be in [0, 1]")
        if self.batch_size < 1 or self.cpu_batch_size < 1 or self.workers < 0 or self.prefetch < 1:
            raise ConfigError("predict.batch_size, predict.cpu_batch_size and predict.prefetch must be >= 1, "
                              "predict.workers >= 0")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError("predict.min_confidence must be in [0, 1]")
