"""Cell crops: one square, fixed-size RGBY crop per cell (the one crop path of training and prediction).

A crop is the cell's bounding box padded to a square (plus `padding`), pixels outside the
cell zeroed when `zero_background`, resized to `crops.size` x `crops.size`, then to the model's
input side (`model_crops`). Crops are uint8 (N x S x S x C); the model takes them as float32 in
[0, 255] (Keras EfficientNet rescales inside the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from hpa_scc.core.config_images import CropConfig


@dataclass
class CellCrops:
    """Crops of one image: uint8 N x S x S x C, their cell IDs (N,) and boxes (N, 4: top, left, bottom, right)."""

    image_id: str
    crops: np.ndarray
    cell_ids: np.ndarray
    boxes: np.ndarray


def square_box(box: tuple[slice, slice], padding: float) -> tuple[int, int, int]:
    """(top, left, side) of a square around a bounding box, padded; may extend past the image."""
    top, bottom = box[0].start, box[0].stop
    left, right = box[1].start, box[1].stop
    side = int(np.ceil(max(bottom - top, right - left) * (1 + 2 * padding)))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    return int(round(cy - side / 2)), int(round(cx - side / 2)), max(side, 1)


def _cut(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """image[top:top+side, left:left+side] with zero padding where it leaves the image."""
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, image.shape[0]), min(left + side, image.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


def cell_crops(rgby: np.ndarray, cells: np.ndarray, cfg: CropConfig, image_id: str = "", channels: int = 4) -> CellCrops:
    """RGBY float H x W x 4 in [0, 1] and its label image -> CellCrops (uint8)."""
    boxes = ndimage.find_objects(cells.astype(np.int32))
    crops, ids, out_boxes = [], [], []
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        top, left, side = square_box(box, cfg.padding)
        patch = _cut(rgby[..., :channels], top, left, side)
        if cfg.zero_background:
            patch = patch * (_cut(cells, top, left, side) == index)[..., None]
        patch = cv2.resize(patch, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA if side > cfg.size else cv2.INTER_LINEAR)
        crops.append(np.clip(np.rint(patch * 255), 0, 255).astype(np.uint8).reshape(cfg.size, cfg.size, channels))
        ids.append(index)
        out_boxes.append((box[0].start, box[1].start, box[0].stop, box[1].stop))
    shape = (0, cfg.size, cfg.size, channels)
    return CellCrops(image_id, np.stack(crops) if crops else np.zeros(shape, np.uint8),
                     np.array(ids, np.int32), np.array(out_boxes, np.int32).reshape(-1, 4))


def fit_to_model(crop: np.ndarray, size: int) -> np.ndarray:
    """uint8 S x S x C crop -> uint8 size x size x C (area resize; unchanged when S == size)."""
    if crop.shape[0] == size:
        return crop
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, crop.shape[2])


def model_crops(rgby: np.ndarray, cells: np.ndarray, cfg: CropConfig, model_size: int, image_id: str = "",
                channels: int = 4) -> CellCrops:
    """The model's input crops of every cell: cut at `cfg.size`, then resized to `model_size`
    (uint8 N x model_size x model_size x C). Training and prediction both call this."""
    cut = cell_crops(rgby, cells, cfg, image_id, channels)
    fitted = np.stack([fit_to_model(c, model_size) for c in cut.crops]) if len(cut.crops) else \
        np.zeros((0, model_size, model_size, channels), np.uint8)
    return CellCrops(image_id, fitted, cut.cell_ids, cut.boxes)


def whole_image(rgby: np.ndarray, size: int, channels: int = 4) -> np.ndarray:
    """The whole image resized to size x size, uint8 (for `image` mode and image-level scores)."""
    small = cv2.resize(rgby[..., :channels], (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8).reshape(size, size, channels)
