"""Label-image helpers shared by every segmenter and the synthetic data: one copy each.

A label image is an integer H x W array, 0 = background; cells and nuclei share IDs 1..N.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from hpa_scc.core.errors import InputError

REFERENCE_SIDE = 2048.0


@dataclass
class Segmentation:
    """Label images at full resolution: cells and nuclei (uint16 H x W, shared IDs)."""

    cells: np.ndarray
    nuclei: np.ndarray

    @property
    def n_cells(self) -> int:
        return int(self.cells.max()) if self.cells.size else 0


def check_rgby(rgby: np.ndarray) -> None:
    if rgby.ndim != 3 or rgby.shape[2] != 4:
        raise InputError(f"expected an H x W x 4 RGBY image, got shape {rgby.shape}")


def upsample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image to `shape` (uint16)."""
    if labels.shape == tuple(shape):
        return labels.astype(np.uint16)
    return cv2.resize(labels.astype(np.uint16), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """Each label's holes filled with that label (where they are background)."""
    out = labels.copy()
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = ndimage.binary_fill_holes(labels[box] == index)
        out[box][region & (labels[box] == 0)] = index
    return out


def remove_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """bool mask without its connected components smaller than `min_area` px."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    area = np.bincount(labels.ravel())
    keep = area >= min_area
    keep[0] = False
    return keep[labels]


def drop_small(cells: np.ndarray, nuclei: np.ndarray, min_cell: float, min_nucleus: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop cells (and their nuclei) whose cell or nucleus area is below the given areas (px), and
    relabel the others 1..N in their order (uint16). Returns (cells, nuclei, kept) where
    kept[new_id - 1] is the old ID. Segmenters and the synthetic data both use it."""
    n = int(max(cells.max(), nuclei.max())) if cells.size else 0
    cell_area = np.bincount(cells.ravel(), minlength=n + 1)
    nucleus_area = np.bincount(nuclei.ravel(), minlength=n + 1)
    keep = np.flatnonzero((cell_area >= min_cell) & (nucleus_area >= min_nucleus))
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, dtype=np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1, dtype=np.uint16)
    return lut[cells], lut[nuclei], keep


def relabel_sequential(cells: np.ndarray, nuclei: np.ndarray, min_cell: float, min_nucleus: float) -> Segmentation:
    """Drop cells (and their nuclei) smaller than the given areas (px at this scale); IDs 1..N."""
    cells, nuclei, _ = drop_small(cells, nuclei, min_cell, min_nucleus)
    return Segmentation(cells, nuclei)


def label_changes(labels: np.ndarray) -> np.ndarray:
    """bool H x W: pixels whose 4-neighbour has another label (both sides of every outline)."""
    lab = labels.astype(np.int32)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, :-1] != lab[:, 1:]
    return edge


def object_contacts(labels: np.ndarray) -> np.ndarray:
    """bool H x W: pixels whose 4-neighbour is another object (both sides of every border between two
    objects; borders with the background do not count)."""
    lab = labels.astype(np.int64)
    contact = np.zeros(lab.shape, bool)
    for a, b, first, second in ((lab[:-1], lab[1:], np.s_[:-1], np.s_[1:]),
                                (lab[:, :-1], lab[:, 1:], np.s_[:, :-1], np.s_[:, 1:])):
        meet = (a != b) & (a > 0) & (b > 0)
        contact[first] |= meet
        contact[second] |= meet
    return contact
