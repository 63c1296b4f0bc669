"""Images prepared for the model ahead of it, in order: read, masks (cached or segmented), crops, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from hpa_scc.core.config_images import CropConfig, SegmentConfig
from hpa_scc.core.errors import describe
from hpa_scc.core.parallel import WORKER_DIED, ordered_stream
from hpa_scc.crops.cut import model_crops, whole_image
from hpa_scc.data.images import read_rgby
from hpa_scc.segment.cache import cached_segmentation
from hpa_scc.submission.encode import encode_label_image


@dataclass(frozen=True)
class PrepareSpec:
    """What a worker needs to prepare one image (picklable)."""

    images: str
    masks: Optional[str]  # mask cache folder; None = segment in memory
    segment: SegmentConfig
    crops: CropConfig  # the training run's crop settings
    model_size: int  # the model's input side, px
    channels: int
    whole_size: Optional[int]  # side of the whole-image input (image_score: whole), None = no whole pass


@dataclass
class PreparedImage:
    """One image ready for the model.

    crops: uint8 N x S x S x C; whole: uint8 S x S x C or None; cell_ids: int (N,);
    boxes: int (N, 4) top, left, bottom, right in px; tokens: N mask tokens; height, width in px;
    blue: float (N,) mean blue (nucleus) signal of each cell in [0, 1].
    """

    image_id: str
    height: int
    width: int
    crops: np.ndarray
    whole: Optional[np.ndarray]
    cell_ids: np.ndarray
    boxes: np.ndarray
    tokens: list[str]
    blue: np.ndarray


def cell_means(plane: np.ndarray, cells: np.ndarray, cell_ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float64 (N,): the mean of `plane` (H x W) over each cell of `cells` (H x W labels), read in
    its bounding box (boxes: N x 4 top, left, bottom, right) rather than over the whole frame."""
    means = np.zeros(len(cell_ids), np.float64)
    for k, (cell_id, (top, left, bottom, right)) in enumerate(zip(cell_ids, boxes)):
        inside = cells[top:bottom, left:right] == cell_id
        means[k] = float(plane[top:bottom, left:right][inside].mean()) if inside.any() else 0.0
    return means


def prepare_image(spec: PrepareSpec, image_id: str) -> PreparedImage:
    """Read, segment (or read cached masks), crop and encode one image."""
    rgby = read_rgby(spec.images, image_id)
    seg = cached_segmentation(rgby, image_id, spec.masks, spec.segment)  # a mask of another size is redone
    crops = model_crops(rgby, seg.cells, spec.crops, spec.model_size, image_id, spec.channels)
    tokens = encode_label_image(seg.cells)
    whole = whole_image(rgby, spec.whole_size, spec.channels) if spec.whole_size else None
    blue = cell_means(rgby[..., 2], seg.cells, crops.cell_ids, crops.boxes)
    return PreparedImage(image_id, rgby.shape[0], rgby.shape[1], crops.crops, whole, crops.cell_ids, crops.boxes,
                         [tokens[int(c)] for c in crops.cell_ids], blue)


@dataclass(frozen=True)
class FailedImage:
    """An image that could not be prepared: its ID and what went wrong (one line)."""

    image_id: str
    problem: str


def prepare_or_fail(spec: PrepareSpec, image_id: str) -> PreparedImage | FailedImage:
    """`prepare_image`, or a FailedImage naming the problem (any error: the batch goes on)."""
    try:
        return prepare_image(spec, image_id)
    except Exception as error:  # noqa: BLE001 - reported per image by the caller
        return FailedImage(image_id, describe(error))


def prepared_stream(ids: list[str], spec: PrepareSpec, workers: int, prefetch: int) -> Iterator[PreparedImage | FailedImage]:
    """PreparedImage of each ID, in order; `workers` spawned processes keep `prefetch` images ahead.

    workers 0 prepares in the calling process. Processes are spawned, not forked, because the
    caller has TensorFlow threads running.
    """
    return ordered_stream(prepare_or_fail, ids, workers, prefetch, spec, spawn=True,
                          on_death=lambda image_id: FailedImage(image_id, f"image {image_id}: {WORKER_DIED}"))
