"""The `hpacellseg` backend: HPA-Cell-Segmentation's U-Nets (package and local weight files required),
whose [background, border, object] probability maps `labels_from_probabilities` turns into labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import InputError
from hpa_scc.segment.labels import (REFERENCE_SIDE, Segmentation, check_rgby, fill_holes_per_label, relabel_sequential,
                                    remove_small, upsample_labels)


def labels_from_probabilities(nuclei_prob: np.ndarray, cell_prob: np.ndarray, cfg: SegmentConfig,
                              full_shape: Optional[tuple[int, int]] = None) -> Segmentation:
    """hpacellseg-style post-processing of U-Net outputs -> Segmentation.

    nuclei_prob, cell_prob: float H x W x 3 maps [background, border, object] in [0, 1] at any
    (reduced) scale; full_shape: (H, W) of the original image (default: the maps' shape).
    Seeds are nuclei (object - border > segment.seed_threshold, small ones dropped); cells are a watershed of the
    cell map seeded by them, limited to pixels where the cell map is not background.
    """
    if nuclei_prob.ndim != 3 or nuclei_prob.shape[2] != 3 or cell_prob.shape != nuclei_prob.shape:
        raise InputError(f"probability maps must both be H x W x 3, got {nuclei_prob.shape} and {cell_prob.shape}")
    height, width = full_shape or nuclei_prob.shape[:2]
    px = nuclei_prob.shape[0] / height * np.sqrt(height * width) / REFERENCE_SIDE
    min_nucleus = cfg.nucleus_min_area * px * px
    min_cell = cfg.cell_min_area * px * px
    seed_map = nuclei_prob[..., 2] - nuclei_prob[..., 1]
    seeds_mask = remove_small(seed_map > cfg.seed_threshold, min_nucleus * 0.5)
    nuclei_mask = remove_small(nuclei_prob[..., 2] + nuclei_prob[..., 1] > cfg.nucleus_prob_threshold,
                                min_nucleus * 0.5) | seeds_mask
    seeds, n = ndimage.label(seeds_mask)
    if n == 0:
        empty = np.zeros((height, width), np.uint16)
        return Segmentation(empty, empty.copy())
    nuclei = watershed(-seed_map, seeds, mask=nuclei_mask)
    foreground = (cell_prob[..., 0] < cfg.cell_background_threshold) | (nuclei > 0)
    closing = np.ones((cfg.cell_close, cfg.cell_close), np.uint8)
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_CLOSE, closing) > 0
    cells = watershed(-(cell_prob[..., 2] - cell_prob[..., 1]), nuclei, mask=foreground)
    cells = fill_holes_per_label(cells.astype(np.int32))
    nuclei = np.where(cells == nuclei, nuclei, 0)
    result = relabel_sequential(cells, nuclei, min_cell, min_nucleus)
    return Segmentation(upsample_labels(result.cells, (height, width)), upsample_labels(result.nuclei, (height, width)))


class HpaCellSegBackend:
    """The official HPA-Cell-Segmentation U-Nets with this project's post-processing."""

    def __init__(self, cfg: SegmentConfig):
        try:
            import hpacellseg.cellsegmentator as cellsegmentator  # type: ignore
        except ImportError:
            raise InputError(
                "segment.backend hpacellseg needs the HPA-Cell-Segmentation package: "
                "pip install git+https://github.com/CellProfiling/HPA-Cell-Segmentation (with torch), "
                "or use segment.backend=classical"
            ) from None
        for key in ("nuclei_model", "cell_model"):
            path = getattr(cfg, key)
            if not path or not Path(path).is_file():
                raise InputError(
                    f"segment.{key} must name a local hpacellseg weight file (got {path!r}); download "
                    "dpn_unet_nuclei_v1.pth / dpn_unet_cell_3ch_v1.pth from the HPA-Cell-Segmentation "
                    "releases on a machine with internet and set the paths in the config"
                )
        self.cfg = cfg
        self.segmentator = cellsegmentator.CellSegmentator(
            cfg.nuclei_model, cfg.cell_model, scale_factor=cfg.scale, device="cpu", padding=True, multi_channel_model=True
        )

    def __call__(self, rgby: np.ndarray) -> Segmentation:
        check_rgby(rgby)
        red, blue, yellow = rgby[..., 0], rgby[..., 2], rgby[..., 3]
        nuclei_prob = self.segmentator.pred_nuclei([blue])[0] / 255.0
        cell_prob = self.segmentator.pred_cells([[red], [yellow], [blue]])[0] / 255.0
        shape = nuclei_prob.shape[:2]
        cell_prob = cv2.resize(cell_prob, (shape[1], shape[0])) if cell_prob.shape[:2] != shape else cell_prob
        return labels_from_probabilities(nuclei_prob, cell_prob, self.cfg, rgby.shape[:2])
