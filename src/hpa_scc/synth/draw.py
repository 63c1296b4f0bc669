"""One synthetic HPA-like image with its truth: cells, four channels, per-cell patterns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import cv2
import numpy as np

from hpa_scc.core.classes import NEGATIVE
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.data.images import CHANNELS
from hpa_scc.segment.labels import REFERENCE_SIDE, drop_small
from hpa_scc.synth.geometry import CellGeometry, box_around, make_geometry, rasterise
from hpa_scc.synth.textures import (contact_seam, dashes, parallel_fibres, polyline, radial_fibres, random_points_in, ring,
                                    smooth_noise, spots, wavy_fibres)

# Share of real train.csv images carrying each class 0-17 (Negative is drawn separately).
CLASS_FREQUENCY = np.array(
    [0.4034, 0.0502, 0.1124, 0.0579, 0.0653, 0.0822, 0.0355, 0.0847, 0.0442,
     0.0464, 0.0375, 0.0036, 0.0795, 0.1475, 0.0923, 0.0116, 0.2607, 0.0285]
)


MITOTIC_SPINDLE = 11


@dataclass
class SynthImage:
    """One generated image and its truth."""

    image_id: str
    rgby: np.ndarray  # float32 H x W x 4 in [0, 1]
    cells: np.ndarray  # uint16 H x W, 0 = background
    nuclei: np.ndarray  # uint16 H x W, same IDs as cells
    cell_labels: dict[int, tuple[int, ...]]  # cell_id -> classes
    image_labels: tuple[int, ...]
    bits: int
    mitotic: tuple[int, ...] = ()  # IDs of the rounded mitotic cells (bright condensed nucleus)


def _draw_cell(
    rng: np.random.Generator,
    cell: CellGeometry,
    cell_mask: np.ndarray,
    nucleus_mask: np.ndarray,
    origin: np.ndarray,
    patterns: tuple[int, ...],
    strength: dict[int, float],
    unit: float,
    edge_fade: float = 0.0,
) -> dict[str, np.ndarray]:
    """Draw one cell's red, blue, yellow and green planes in its bounding box; with `edge_fade` > 0
    its red and yellow dim toward its outline (`_edge_ramp`)."""
    shape = cell_mask.shape
    local_center = cell.nucleus_center - origin
    cyto = cell_mask & ~nucleus_mask
    thin = max(1, int(round(unit)))
    planes = {c: np.zeros(shape, np.float32) for c in CHANNELS}

    # Nucleus with dark nucleoli.
    nucleoli_pts = random_points_in(cv2.erode(nucleus_mask.astype(np.uint8), None, iterations=max(1, int(4 * unit))) > 0,
                                     rng, int(rng.integers(1, 5)))
    nucleoli = np.zeros(shape, np.float32)
    spots(nucleoli, rng, nucleoli_pts, cell.nucleus_radius * 0.13)
    texture = 0.75 + 0.12 * smooth_noise(rng, shape, 2 * unit)
    blue_level = 1.3 if cell.mitotic else 1.0
    planes["blue"] = nucleus_mask * np.clip(texture * blue_level - 0.45 * nucleoli, 0, None)

    # Microtubules: radial fibres, denser near the nucleus.
    fibres = np.zeros(shape, np.float32)
    radial_fibres(fibres, rng, local_center, cell.radius * np.sqrt(cell.elongation) * 1.3, 70, thin)
    planes["red"] = (cyto + 0.15 * nucleus_mask) * (0.25 + 0.75 * cv2.GaussianBlur(fibres, (0, 0), 0.7 * unit))

    # ER: reticular texture, brightest around the nucleus.
    dist = np.hypot(*np.mgrid[0:shape[0], 0:shape[1]] - local_center.reshape(2, 1, 1)).astype(np.float32)
    falloff = np.exp(-np.maximum(dist - cell.nucleus_radius, 0) / (0.6 * cell.radius))
    reticulum = np.exp(-(smooth_noise(rng, shape, 2.5 * unit) / 0.45) ** 2)
    er = (cyto + 0.2 * nucleus_mask) * falloff * (0.3 + 0.7 * reticulum)
    if edge_fade > 0:
        ramp = _edge_ramp(cell_mask, edge_fade * cell.radius)
        planes["red"] *= ramp
        er = er * ramp
    planes["yellow"] = er

    green = np.zeros(shape, np.float32)
    for cls in patterns:
        g = np.zeros(shape, np.float32)
        s = strength[cls] * rng.uniform(0.7, 1.15)
        if cls == 0:  # nucleoplasm
            g = nucleus_mask * np.clip(0.8 + 0.15 * smooth_noise(rng, shape, 3 * unit) - 0.7 * nucleoli, 0, None)
        elif cls == 1:  # nuclear membrane
            g = ring(nucleus_mask, 2.5 * unit) * 1.2
        elif cls == 2:  # nucleoli
            g = nucleoli * 1.2
        elif cls == 3:  # nucleoli fibrillar centre: tiny dots inside nucleoli
            spots(g, rng, random_points_in(nucleoli > 0.5, rng, 6 * max(1, len(nucleoli_pts))), 0.9 * unit, 1.3)
        elif cls == 4:  # nuclear speckles
            spots(g, rng, random_points_in(nucleus_mask, rng, int(rng.integers(15, 30))), 1.6 * unit)
            g = cv2.GaussianBlur(g, (0, 0), unit) * 1.3
        elif cls == 5:  # nuclear bodies
            spots(g, rng, random_points_in(nucleus_mask, rng, int(rng.integers(2, 6))), 2.0 * unit, 1.3)
        elif cls == 6:  # ER
            g = er * 1.1
        elif cls == 7:  # Golgi: compact perinuclear cluster on one side
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.3 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            pts = spot + rng.normal(0, 0.25 * cell.nucleus_radius, size=(25, 2))
            spots(g, rng, pts, 2.2 * unit)
            g = cv2.GaussianBlur(g, (0, 0), unit) * 1.3
        elif cls == 8:  # intermediate filaments
            wavy_fibres(g, rng, local_center, cell.radius, 18, thin)
        elif cls == 9:  # actin: parallel stress fibres, bright rim
            parallel_fibres(g, rng, local_center, cell.radius * np.sqrt(cell.elongation), cell.angle, 14, thin)
            g = g + 0.6 * ring(cell_mask, 3 * unit)
        elif cls == 10:  # microtubules
            g = fibres.copy()
        elif cls == MITOTIC_SPINDLE:  # spindle between two poles
            axis = rng.uniform(0, np.pi)
            pole = 0.9 * cell.nucleus_radius * np.array([np.sin(axis), np.cos(axis)])
            for _ in range(24):
                bulge = rng.normal(0, 0.35 * cell.nucleus_radius)
                mid = local_center + bulge * np.array([np.cos(axis), -np.sin(axis)])
                polyline(g, np.stack([local_center - pole, mid, local_center + pole]), thin, rng.uniform(0.6, 1.0))
        elif cls == 12:  # centrosome: one or two bright dots by the nucleus
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.15 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            spots(g, rng, spot + rng.normal(0, 1.5 * unit, size=(int(rng.integers(1, 3)), 2)), 2.5 * unit, 1.5)
        elif cls == 13:  # plasma membrane
            g = ring(cell_mask, 3 * unit) * 1.2
        elif cls == 14:  # mitochondria
            dashes(g, rng, random_points_in(cyto, rng, 60), 0.18 * cell.radius, thin)
        elif cls == 15:  # aggresome: one big perinuclear blob
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.4 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            spots(g, rng, spot[None], 0.35 * cell.nucleus_radius, 1.4)
        elif cls == 16:  # cytosol
            g = cyto * np.clip(0.6 + 0.1 * smooth_noise(rng, shape, 4 * unit), 0, None)
        elif cls == 17:  # vesicles
            spots(g, rng, random_points_in(cyto, rng, int(rng.integers(40, 80))), 1.3 * unit)
        green += s * g * cell_mask
    planes["green"] = green
    return planes


SEAM_DEPTH = 0.85  # the share of the signal a contact seam takes away on its centre line
EDGE_FLOOR = 0.12  # the share of a faded cell's red and yellow left at its outline


def _edge_ramp(cell_mask: np.ndarray, depth: float) -> np.ndarray:
    """float32 ramp over a cell's box: EDGE_FLOOR at its outline (the frame's edge does not count)
    rising linearly to 1 at `depth` px inside, as thin cell margins look in a fluorescence image."""
    inside = cv2.distanceTransform(cell_mask.astype(np.uint8), cv2.DIST_L2, 5)
    return (EDGE_FLOOR + (1.0 - EDGE_FLOOR) * np.clip(inside / max(depth, 1.0), 0.0, 1.0)).astype(np.float32)


def generate_image(seed: np.random.SeedSequence | int, size: int, cfg: SynthConfig, bits: int = 8) -> SynthImage:
    """Generate one synthetic image of side `size` px with its truth (see module docstring)."""
    rng = np.random.default_rng(seed)
    image_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    unit = size / 512.0  # drawing scale: 1 px at 512 px

    # Image-level patterns and their per-cell expression.
    n_cells = int(rng.integers(cfg.cells_min, cfg.cells_max + 1))
    if rng.random() < cfg.p_negative_image:
        patterns: tuple[int, ...] = ()
    else:
        weights = np.asarray(cfg.labels_per_image, dtype=float)
        k = int(rng.choice(np.arange(1, len(weights) + 1), p=weights / weights.sum()))
        p = CLASS_FREQUENCY ** (1.0 - cfg.class_balance)
        if cfg.classes:
            p = p * np.isin(np.arange(len(p)), cfg.classes)
        p = p / p.sum()
        k = min(k, int(np.count_nonzero(p)))
        patterns = tuple(sorted(int(c) for c in rng.choice(len(p), size=k, replace=False, p=p)))
    express = rng.random((n_cells, len(patterns))) < cfg.p_express
    for j in range(len(patterns)):  # every image label is shown by at least one cell
        if not express[:, j].any():
            express[rng.integers(n_cells), j] = True
    spindle = [patterns.index(MITOTIC_SPINDLE)] if MITOTIC_SPINDLE in patterns else []
    mitotic = [bool(spindle and express[i, spindle[0]]) or rng.random() < cfg.p_mitotic for i in range(n_cells)]
    strength = {c: float(rng.uniform(0.45, 1.0)) for c in patterns}

    geometry = make_geometry(rng, size, cfg, mitotic)
    labels, nuclei = rasterise(geometry, size)
    area_scale = (size / REFERENCE_SIDE) ** 2
    cells, nuclei, kept = drop_small(labels, nuclei, int(cfg.cell_min_area * area_scale),
                                     int(cfg.nucleus_min_area * area_scale))

    planes = {c: np.zeros((size, size), np.float32) for c in CHANNELS}
    cell_labels: dict[int, tuple[int, ...]] = {}
    for new_id, old_index in enumerate(kept, start=1):
        cell = geometry[old_index - 1]
        row = express[old_index - 1]
        shown = tuple(c for c, e in zip(patterns, row) if e)
        if MITOTIC_SPINDLE in shown and not cell.mitotic:
            shown = tuple(c for c in shown if c != MITOTIC_SPINDLE)
        cell_labels[new_id] = shown if shown else (NEGATIVE,)
        ys, xs = box_around(cell.center, cell.radius * np.sqrt(cell.elongation) * 1.5, size)
        local_cells = cells[ys, xs] == new_id
        local_nucleus = nuclei[ys, xs] == new_id
        drawn = _draw_cell(rng, cell, local_cells, local_nucleus, np.array([ys.start, xs.start]), shown, strength, unit,
                           cfg.edge_fade)
        for c in CHANNELS:
            planes[c][ys, xs] += drawn[c]

    if cfg.contact_seam > 0:  # a dark line where two nuclei, or two cells, touch
        width = cfg.contact_seam * size / REFERENCE_SIDE
        planes["blue"] *= 1.0 - SEAM_DEPTH * contact_seam(nuclei, width)
        cell_seam = 1.0 - SEAM_DEPTH * contact_seam(cells, width)
        planes["red"] *= cell_seam
        planes["yellow"] *= cell_seam
    rgby = _finish_channels(rng, planes, size, unit, cfg)
    union = sorted({c for labs in cell_labels.values() for c in labs if c != NEGATIVE})
    image_labels = tuple(union) if union else (NEGATIVE,)
    mitotic_ids = tuple(new_id for new_id, old in enumerate(kept, start=1) if geometry[old - 1].mitotic)
    return SynthImage(image_id, rgby, cells, nuclei, cell_labels, image_labels, bits, mitotic_ids)


def _finish_channels(rng, planes: dict[str, np.ndarray], size: int, unit: float, cfg: SynthConfig) -> np.ndarray:
    """Optics: blur, uneven illumination, per-channel gain, background and noise -> H x W x 4."""
    illumination = 0.75 + 0.25 * np.tanh(smooth_noise(rng, (size, size), size / 6))
    out = np.empty((size, size, 4), np.float32)
    for i, c in enumerate(CHANNELS):
        plane = cv2.GaussianBlur(planes[c], (0, 0), cfg.blur * unit)
        gain = rng.uniform(0.35, 0.8) if c != "green" else rng.uniform(0.5, 0.9)
        plane = plane * (gain * cfg.brightness) * illumination + rng.uniform(0.005, 0.03)
        plane = plane + rng.normal(0, cfg.noise, plane.shape).astype(np.float32) * np.sqrt(np.clip(plane, 0.02, None) * 4)
        out[..., i] = np.clip(plane, 0, 1)
    return out
