"""Label images -> maps in hpacellseg's format: what its U-Nets would ideally output for those cells.

    nuclei_pred, cell_pred = maps_from_labels(cells, nuclei)

Each map is uint8 H x W x 3: channel 0 unused (0), 1 = border (255 on a band along every object's
outline, between touching objects too), 2 = interior (255 inside an object, off its border band),
smoothed with a Gaussian like a network's soft output. Used for the post-processing's round-trip
tests, its fixtures, and as training targets of a learned segmenter.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
from scipy import ndimage

from hpa_scc.segment.labels import REFERENCE_SIDE, label_changes

BORDER_WIDTH = 8.0  # px of the border band at 2048 x 2048 (scaled with the image side)
SOFTNESS = 1.5  # Gaussian sigma of the maps, px at 2048 x 2048
NUCLEUS_CORE = 0.3  # a derived nucleus: the part of its cell at >= this x the cell's deepest distance


def _outline_band(labels: np.ndarray, width: float) -> np.ndarray:
    """bool: pixels within `width` px of a change of label (object outlines, shared borders)."""
    edge = label_changes(labels)
    if width <= 1:
        return edge
    distance = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 5)
    return distance < width / 2.0


def _map(labels: np.ndarray, width: float, sigma: float) -> np.ndarray:
    """One uint8 H x W x 3 map of a label image (see module docstring)."""
    band = _outline_band(labels, width) & ((labels > 0) | ndimage.binary_dilation(labels > 0, iterations=int(width)))
    interior = (labels > 0) & ~band
    out = np.zeros(labels.shape + (3,), np.float32)
    out[..., 1] = band
    out[..., 2] = interior
    if sigma > 0:
        out[..., 1:] = cv2.GaussianBlur(out[..., 1:], (0, 0), sigma)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def nucleus_cores(cells: np.ndarray, fraction: float = NUCLEUS_CORE, smooth: float = 0.0) -> np.ndarray:
    """A stand-in nucleus for every cell (for masks without nuclei): the largest connected part of
    the cell's pixels at least `fraction` x its deepest distance from its outline, opened with a
    disk of radius `smooth` px (no thin necks); same IDs (uint16)."""
    cells = cells.astype(np.int32)
    inside = (cells > 0) & ~_outline_band(cells, 1)
    distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    n = int(cells.max(initial=0))
    if n == 0:
        return np.zeros(cells.shape, np.uint16)
    deepest = np.asarray(ndimage.maximum(distance, cells, np.arange(1, n + 1)), np.float64)
    limit = np.concatenate([[np.inf], deepest * fraction])
    core = (cells > 0) & (distance >= limit[cells])
    if smooth >= 1:
        side = 2 * int(round(smooth)) + 1
        core = cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_OPEN,
                                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))) > 0
    parts, n_parts = ndimage.label(core)
    if n_parts == 0:
        return np.zeros(cells.shape, np.uint16)
    area = np.bincount(parts.ravel(), minlength=n_parts + 1)
    owner = np.zeros(n_parts + 1, np.int64)
    owner[parts.ravel()] = cells.ravel()
    best = np.zeros(n + 1, np.int64)  # the largest part of each cell
    for part in np.argsort(area[1:], kind="stable") + 1:  # ascending: the largest is written last
        best[owner[part]] = part
    keep = np.zeros(n_parts + 1, bool)
    keep[best[best > 0]] = True
    keep[0] = False
    return np.where(keep[parts], cells, 0).astype(np.uint16)


def maps_from_labels(cells: np.ndarray, nuclei: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei_pred, cell_pred) uint8 H x W x 3 hpacellseg maps of label images; without `nuclei`,
    each cell's core stands in for its nucleus (`nucleus_cores`)."""
    scale = np.sqrt(cells.shape[0] * cells.shape[1]) / REFERENCE_SIDE
    width, sigma = max(1.0, BORDER_WIDTH * scale), SOFTNESS * scale
    nuclei = nucleus_cores(cells, smooth=width) if nuclei is None else nuclei
    return _map(nuclei, width, sigma), _map(cells, width, sigma)
