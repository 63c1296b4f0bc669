"""Cell crops: one square, fixed-size RGBY crop per cell, and an on-disk crop cache.

A crop is the cell's bounding box padded to a square (plus `padding`), pixels outside the
cell zeroed when `zero_background`, resized to `crops.size` x `crops.size`, then to the model's
input side (`model_crops`: the one function that feeds training and prediction alike). Crops
are uint8 in the cache (N x S x S x C) and float32 in [0, 255] when fed to the model (Keras
EfficientNet rescales inside the model). A cached file records the hash of the mask it was cut
from: a re-segmented image's crops are cut again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from scipy import ndimage

from .config import CropConfig
from .io import atomic_path, read_rgby, validate_id


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


def cache_path(cache_dir: str | Path, image_id: str, cfg: CropConfig, model_size: int, channels: int) -> Path:
    """MASKDIR/crops/TAG/ID.npz, TAG naming every setting that changes the crops' pixels."""
    tag = f"s{cfg.size}_m{model_size}_p{cfg.padding:g}_z{int(cfg.zero_background)}_c{channels}"
    return Path(cache_dir) / tag / f"{validate_id(image_id)}.npz"


def mask_stamp(masks: str | Path, image_id: str) -> str:
    """Hash of an image's cached cell mask file (ties a crop cache file to the mask it was cut from)."""
    from .io import file_sha256
    from .segment import mask_paths, read_masks

    cells_path = mask_paths(masks, image_id)[0]
    if not cells_path.is_file():
        read_masks(masks, image_id)  # raises the InputError that names the missing mask
    return file_sha256(cells_path)[:16]


def _read_cache(path: Path, image_id: str, stamp: str) -> Optional[CellCrops]:
    """Cached crops when the file is readable and was cut from the mask with this stamp; else None
    (a corrupt file or one cut from other masks is rebuilt, with a warning for a corrupt one)."""
    import warnings

    try:
        with np.load(path) as data:
            recorded = str(data["mask_stamp"]) if "mask_stamp" in data.files else None
            if recorded != stamp:
                return None
            return CellCrops(image_id, data["crops"], data["cell_ids"], data["boxes"])
    except Exception as error:  # noqa: BLE001 - any unreadable cache file is rebuilt
        warnings.warn(f"crop cache {path} is unreadable ({error.__class__.__name__}); cutting the crops again")
        return None


def load_or_make_crops(images: str | Path, masks: str | Path, image_id: str, cfg: CropConfig, model_size: int,
                       cache_dir: Optional[str | Path] = None, channels: int = 4) -> CellCrops:
    """`model_crops` of one image from its cached masks, through the crop cache when given."""
    from .segment import read_masks

    path = cache_path(cache_dir, image_id, cfg, model_size, channels) if cache_dir else None
    stamp = mask_stamp(masks, image_id)
    if path is not None and path.is_file():
        cached = _read_cache(path, image_id, stamp)
        if cached is not None:
            return cached
    crops = model_crops(read_rgby(images, image_id), read_masks(masks, image_id).cells, cfg, model_size, image_id,
                        channels)
    if path is not None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, crops=crops.crops, cell_ids=crops.cell_ids, boxes=crops.boxes,
                                    mask_stamp=np.array(stamp))
    return crops
