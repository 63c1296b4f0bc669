"""The default segmenter (no weights): nuclei from blue, cells grown from them over red + yellow.

At `scale` (0.25) of full resolution, nuclei are the blue channel above a scaled Otsu threshold,
split where touching by a watershed of their distance transform; cells are the red + yellow (+ blue)
signal above a scaled Otsu threshold of its logarithm, grown from the nuclei by a seeded watershed
of the smoothed intensity, raised along seams (touching cells meet where the signal dips below
its morphological closing) and with the distance to the nearest nucleus, at most
`cell_max_distance` from their nucleus; small objects are dropped; labels are upsampled. Areas and distances in the config are px at 2048 x 2048.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.segment.labels import (REFERENCE_SIDE, Segmentation, check_rgby, fill_holes_per_label, relabel_sequential,
                                    remove_small, upsample_labels)

SIGMA_SCALE = 0.25  # the config's smoothing sigmas are px at this fraction of a 2048 x 2048 image

def _resize(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(plane, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _normalise(plane: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Scale a plane so that its `percentile`-th percentile is 1 (robust to 8/16-bit and exposure)."""
    top = float(np.percentile(plane, percentile))
    return plane / top if top > 1e-6 else plane


def _threshold(plane: np.ndarray, factor: float, log_floor: Optional[float] = None) -> float:
    """Background level + factor x (Otsu threshold - background level).

    The background level is the median of the pixels below Otsu's threshold, so a camera
    offset or a haze does not move the cut; factor 1 is plain Otsu. inf for a flat plane.
    log_floor: work on log(plane + log_floor) instead, so that faint and bright foreground
    weigh alike (a fluorescence signal spans decades); the result is in the plane's units.
    """
    if float(plane.max()) - float(plane.min()) < 1e-6:
        return float("inf")
    if log_floor is not None:
        return float(np.exp(_threshold(np.log(plane + log_floor), factor)) - log_floor)
    otsu = float(threshold_otsu(plane))
    below = plane[plane < otsu]
    background = float(np.median(below)) if below.size else 0.0
    return background + factor * (otsu - background)


def segment_nuclei(blue: np.ndarray, cfg: SegmentConfig, px: float, min_area: float) -> np.ndarray:
    """Blue plane at working scale -> int32 nucleus labels, touching nuclei split.

    px: working-scale pixels per 2048-reference pixel; min_area in working-scale px.
    """
    smooth = cv2.GaussianBlur(blue, (0, 0), cfg.nucleus_smooth * px / SIGMA_SCALE)
    mask = smooth > _threshold(smooth, cfg.nucleus_threshold)
    opening = np.ones((cfg.nucleus_open, cfg.nucleus_open), np.uint8)
    mask = ndimage.binary_fill_holes(cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, opening) > 0)
    mask = remove_small(mask, min_area * cfg.nucleus_fragment_area)
    if not mask.any():
        return np.zeros(blue.shape, np.int32)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    distance = cv2.GaussianBlur(distance, (0, 0), cfg.distance_smooth * px / SIGMA_SCALE)
    typical_radius = np.sqrt(min_area / np.pi) * cfg.typical_nucleus_radius
    depth = cfg.split_footprint * typical_radius * cfg.split_depth
    seeds = _h_maxima_seeds(distance, depth, max(1, int(cfg.split_min_distance * px)), mask, cfg.seed_support)
    labels = watershed(-distance, seeds, mask=mask)
    return labels.astype(np.int32)


def _h_maxima_seeds(surface: np.ndarray, depth: float, min_distance: int, mask: np.ndarray, support: float = 0.5
                    ) -> np.ndarray:
    """Markers at regional maxima of `surface` that stand at least `depth` above their saddle."""
    peaks = h_maxima(surface.astype(np.float64), depth) > 0
    peaks &= mask
    if min_distance > 1:
        peaks = cv2.dilate(peaks.astype(np.uint8), np.ones((min_distance, min_distance), np.uint8)) > 0
        peaks &= mask & (surface >= depth * support)
    markers, _ = ndimage.label(peaks)
    components, n = ndimage.label(mask)  # every component gets at least one seed
    if n:
        has_seed = np.zeros(n + 1, bool)
        has_seed[np.unique(components[markers > 0])] = True
        missing = np.flatnonzero(~has_seed[1:]) + 1
        if len(missing):
            centres = ndimage.maximum_position(surface, components, missing)
            start = markers.max() + 1
            for k, (y, x) in enumerate(centres):
                markers[y, x] = start + k
    return markers


def cell_signal(rgby_small: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """Cytoplasm signal at working scale: mean of normalised red and yellow plus a little blue."""
    red, yellow, blue = (_normalise(rgby_small[..., c], cfg.normalise_percentile) for c in (0, 3, 2))
    w_red, w_yellow, w_blue = cfg.cell_channel_weights
    return w_red * red + w_yellow * yellow + w_blue * blue


def seam_strength(signal: np.ndarray, radius: int) -> np.ndarray:
    """float32, same shape: how far each pixel sits below the signal's closing with a disk of
    `radius` px, relative to that closing (0 on plateaus and slopes; towards 1 in a dark seam
    narrower than the disk between two bright cells)."""
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(signal, cv2.MORPH_CLOSE, disk)
    floor = 1e-3 + 0.1 * float(np.percentile(signal, 99))  # no seams in the dark background
    return cv2.GaussianBlur((closed - signal) / (closed + floor), (0, 0), 1.0)


def segment_classical(rgby: np.ndarray, cfg: SegmentConfig) -> Segmentation:
    """RGBY float H x W x 4 -> full-resolution Segmentation (see module docstring)."""
    check_rgby(rgby)
    height, width = rgby.shape[:2]
    side = float(np.sqrt(height * width))
    scale = min(1.0, max(cfg.scale, cfg.min_work_side / side))
    work = (max(8, round(height * scale)), max(8, round(width * scale)))
    small = _resize(rgby, work)
    px = scale * side / REFERENCE_SIDE  # working px per 2048-reference px
    min_nucleus = cfg.nucleus_min_area * px * px
    min_cell = cfg.cell_min_area * px * px

    nuclei = segment_nuclei(_normalise(small[..., 2], cfg.normalise_percentile), cfg, px, min_nucleus)
    if nuclei.max() == 0:
        empty = np.zeros((height, width), np.uint16)
        return Segmentation(empty, empty.copy())

    raw = cell_signal(small, cfg)
    signal = cv2.GaussianBlur(raw, (0, 0), cfg.cell_smooth * px / SIGMA_SCALE)
    foreground = signal > _threshold(signal, cfg.cell_threshold, log_floor=cfg.cell_signal_floor)
    foreground |= nuclei > 0
    reach = cv2.distanceTransform((nuclei == 0).astype(np.uint8), cv2.DIST_L2, 5)
    foreground &= reach <= cfg.cell_max_distance * px
    foreground = ndimage.binary_fill_holes(foreground)
    # Flood from the nuclei over the inverted intensity, plus the seams between touching cells and a
    # distance term that keeps a cell from leaking far past a neighbour's nucleus.
    fine = cv2.GaussianBlur(raw, (0, 0), max(0.5, cfg.cell_seam_smooth * px / SIGMA_SCALE))
    seams = seam_strength(fine, max(1, round(cfg.cell_seam_radius * px)))
    surface = (-signal / (signal.max() + 1e-6) + cfg.cell_seam_weight * seams
               + cfg.cell_distance_weight * reach / (cfg.cell_max_distance * px))
    cells = watershed(surface, nuclei, mask=foreground)
    cells = fill_holes_per_label(cells.astype(np.int32))
    nuclei = np.where(cells == nuclei, nuclei, 0)
    result = relabel_sequential(cells, nuclei, min_cell, min_nucleus)
    return Segmentation(upsample_labels(result.cells, (height, width)), upsample_labels(result.nuclei, (height, width)))
