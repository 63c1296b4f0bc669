"""The on-disk crop cache: `MASKDIR/crops/TAG/ID.npz`, each file tied to the hash of the mask it was
cut from (a re-segmented image's crops are cut again).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from hpa_scc.core.config_images import CropConfig
from hpa_scc.core.files import atomic_path, file_sha256
from hpa_scc.core.layout import cache_path, mask_paths
from hpa_scc.crops.cut import CellCrops, model_crops
from hpa_scc.data.images import read_rgby
from hpa_scc.segment.cache import read_masks


def mask_stamp(masks: str | Path, image_id: str) -> str:
    """Hash of an image's cached cell mask file (ties a crop cache file to the mask it was cut from)."""
    cells_path = mask_paths(masks, image_id)[0]
    if not cells_path.is_file():
        read_masks(masks, image_id)  # raises the InputError that names the missing mask
    return file_sha256(cells_path)[:16]


def _read_cache(path: Path, image_id: str, stamp: str) -> Optional[CellCrops]:
    """Cached crops when the file is readable and was cut from the mask with this stamp; else None
    (a corrupt file or one cut from other masks is rebuilt, with a warning for a corrupt one)."""
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
