"""Config sections of the image stages: paths, synthetic data, segmentation, crops, prepare, score.

Sizes and areas of the segmentation stage are given for a 2048 x 2048 image and scale with the image side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from hpa_scc.core.classes import COMPETITION_IOU
from hpa_scc.core.errors import ConfigError
from hpa_scc.core.ranges import check_ranges


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

    RANGES: ClassVar[dict[str, str]] = {"noise": "[0, inf)", "brightness": "(0, inf)", "blur": "[0, inf)",
        "p_mitotic": "[0, 1]", "p_negative_image": "[0, 1]", "cell_radius": "(0, 0.5]", "nucleus_ratio": "(0, 1)",
        "fraction_16bit": "[0, 1]", "edge_fade": "[0, 1]",
        "nucleus_lobes": "[0, 0.5]", "spacing": "(0, 4]", "alignment": "[0, 1]", "nucleus_elongation": "[0, 1]",
        "contact_seam": "[0, inf)"}

    n_train: int = 24
    n_test: int = 8
    sizes: tuple[int, ...] = (432, 512, 768)  # image sides, px (real: 1728, 2048, 3072)
    fraction_16bit: float = 0.3  # share of images written as 16-bit PNGs
    cells_min: int = 8
    cells_max: int = 24
    cell_radius: float = 0.11  # mean cell radius as a fraction of the image side
    nucleus_ratio: float = 0.45  # nucleus radius / cell radius
    nucleus_lobes: float = 0.06  # largest amplitude of a nucleus outline's harmonics (0.2: kidney-shaped, lobed)
    # Packing: cell centres at least `spacing` x cell_radius apart (below ~1.1 neighbouring cells overlap
    # and share a border, so their nuclei can touch, as in a confluent field); `alignment` 0 = each cell
    # turned at random, 1 = every cell of an image along one direction (a sheet of parallel cells);
    # a nucleus takes this share of its cell's elongation (0: round, 1: as elongated as its cell).
    spacing: float = 1.35
    alignment: float = 0.0
    nucleus_elongation: float = 0.4
    contact_seam: float = 0.0  # px at 2048 x 2048: a dark line this wide where two nuclei or two cells touch (0: none)
    labels_per_image: tuple[float, ...] = (0.48, 0.41, 0.11)  # P(1, 2, 3 patterns)
    # Pattern frequencies: P(class) ~ real_frequency ** (1 - class_balance); 0 = the real train.csv
    # frequencies (class 11 on 0.4% of images), 1 = every class 0-17 equally often.
    class_balance: float = 0.0
    classes: tuple[int, ...] = ()  # draw patterns only from these classes (0-17); empty = all
    p_express: float = 0.75  # chance that a cell shows each of its image's patterns
    p_negative_image: float = 0.02  # chance that an image shows no pattern at all
    noise: float = 0.02  # Gaussian noise sigma, in [0, 1] intensity units
    brightness: float = 1.0  # every channel's gain x this (0.5: a dim exposure)
    blur: float = 0.8  # optics blur sigma, px at 512 px (scaled with the side)
    p_mitotic: float = 0.02  # chance that a cell is a rounded mitotic cell (more when it shows the spindle)
    edge_fade: float = 0.0  # red and yellow dim toward each cell's outline over this share of its radius (0: no fade)
    # A drawn cell is kept (and labelled) when its area and its nucleus's area inside the frame reach
    # these, px at 2048 x 2048 (scaled with the image area): cells cut by the edge down to a sliver are not cells.
    cell_min_area: int = 5500
    nucleus_min_area: int = 1500
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        check_ranges(self, "synth")
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

    RANGES: ClassVar[dict[str, str]] = {"nucleus_min_area": "[1, inf)", "cell_min_area": "[1, inf)",
        "nucleus_smooth": "[0, inf)", "cell_smooth": "[0, inf)", "cell_max_distance": "(0, inf)",
        "cell_seam_weight": "[0, inf)", "cell_seam_radius": "[1, inf)", "cell_distance_weight": "[0, inf)",
        "normalise_percentile": "(0, 100]", "workers": "[0, inf)", "unet_map_smooth": "[0, inf)",
        "unet_neck_split": "[0, 1)"}

    backend: str = "unet"  # unet (the project's U-Net, segment/unet.py) | classical | hpacellseg
    scale: float = 0.25  # work at this fraction of the full resolution
    min_work_side: int = 512  # ... but never below this side (px), for small images
    nucleus_min_area: int = 2500
    cell_min_area: int = 5500
    nucleus_smooth: float = 2.0  # Gaussian sigma before thresholding, px at 0.25 x 2048
    nucleus_threshold: float = 1.0  # 1 = Otsu; 0 = background level (see segment._threshold)
    split_min_distance: int = 20  # min distance between nucleus seeds, px at 2048
    split_footprint: float = 1.0  # h-maxima depth as a fraction of a typical nucleus radius
    typical_nucleus_radius: float = 1.2  # a typical nucleus radius = this x the radius of a nucleus of nucleus_min_area
    split_depth: float = 0.5  # ... and the h-maxima depth = split_footprint x split_depth x that radius
    seed_support: float = 0.5  # a dilated seed keeps pixels whose distance is >= this x the h-maxima depth
    nucleus_fragment_area: float = 0.5  # nucleus fragments below this x nucleus_min_area are dropped before splitting
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
    # Watershed landscape of the cells: -signal + cell_seam_weight x seam strength (how far the
    # signal, smoothed with sigma cell_seam_smooth, dips below its closing with a disk of radius
    # cell_seam_radius: the dim seam where touching cells meet) + cell_distance_weight x distance to
    # the nearest nucleus / cell_max_distance (keeps a cell from leaking far past a neighbour's nucleus).
    cell_seam_weight: float = 1.0
    cell_seam_radius: int = 24  # px at 2048
    cell_seam_smooth: float = 0.7  # px at 0.25 x 2048
    cell_distance_weight: float = 0.25
    cell_max_distance: int = 400  # a cell reaches at most this far from its nucleus, px at 2048
    nuclei_model: Optional[str] = None  # hpacellseg nuclei U-Net weights (local file dpn_unet_nuclei_v1.pth)
    cell_model: Optional[str] = None  # hpacellseg cell U-Net weights (local file dpn_unet_cell_3ch_v1.pth)
    # hpacellseg backend: its maps -> labels with label_cell, `exact` (as the competition's truth was
    # made) or `fast` (the same at half the side, ~7x faster, mean IoU 0.99 against exact)
    label_mode: str = "exact"
    unet_weights: Optional[str] = None  # unet backend: a .weights.h5 file; None = the weights shipped in the package
    unet_base: int = 8  # filters of the U-Net's first level (the weights must match)
    unet_side: int = 512  # the U-Net sees the whole frame at this side (1/4 of 2048)
    # Gaussian sigma (px at the working side) of the U-Net's softmax maps before labelling: on real
    # fibrous cytoplasm the raw maps fray at the cell edges (docs/design.md, "Smoothed maps"); 0 = off
    unet_map_smooth: float = 1.5
    # Touching nuclei that the U-Net's maps join are split where the joined shape narrows to a neck
    # thinner than this x its widest part (segment.label_cell.split_at_necks; docs/design.md, "Necks"); 0 = off
    unet_neck_split: float = 0.5
    workers: int = 2

    def __post_init__(self) -> None:
        check_ranges(self, "segment")
        if self.backend not in ("classical", "hpacellseg", "unet"):
            raise ConfigError(f"segment.backend must be classical, hpacellseg or unet, got {self.backend!r}")
        if self.label_mode not in ("exact", "fast"):
            raise ConfigError(f"segment.label_mode must be exact or fast, got {self.label_mode!r}")
        if not 0.05 <= self.scale <= 1.0:
            raise ConfigError("segment.scale must be in [0.05, 1]")
        if len(self.cell_channel_weights) != 3:
            raise ConfigError("segment.cell_channel_weights must list 3 weights (red, yellow, blue)")


@dataclass(frozen=True)
class CropConfig:
    """Cell crops fed to the model."""

    RANGES: ClassVar[dict[str, str]] = {"size": "[8, 4096]", "padding": "[0, 2]"}

    size: int = 128  # crop side, px
    zero_background: bool = True  # zero pixels outside the cell
    padding: float = 0.05  # extra margin around the bounding box, fraction of its side

    def __post_init__(self) -> None:
        check_ranges(self, "crops")


@dataclass(frozen=True)
class ScoreConfig:
    """Competition metric settings."""

    RANGES: ClassVar[dict[str, str]] = {"iou": "(0, 1]"}

    iou: float = COMPETITION_IOU
    strict: bool = False  # count detections of unverified classes as false positives

    def __post_init__(self) -> None:
        check_ranges(self, "score")


@dataclass(frozen=True)
class PrepareConfig:
    """`hpa-scc prepare`: the training set's crops written once, in shards."""

    shard_images: int = 32  # images a shard file holds (its crops load into memory together)
    shards_in_memory: int = 2  # shards training keeps loaded at once (its shuffling window)

    def __post_init__(self) -> None:
        if self.shard_images < 1 or self.shards_in_memory < 1:
            raise ConfigError("prepare.shard_images and prepare.shards_in_memory must be >= 1")
