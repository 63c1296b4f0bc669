"""Synthetic HPA-like images with cell-level truth: the embedded default data set.

    hpa-scc synth --config configs/demo.yaml --out data/demo

Each image is a field of irregular adherent cells (touching each other and the border) with
four channels like the real ones: nuclei (blue), radial microtubule fibres (red), a
perinuclear reticular ER texture (yellow) and a green protein channel. The green channel
draws, per cell, a distinct pattern for each of classes 0-17 where that compartment lives
(nucleoplasm, nuclear rim, nucleoli, speckles, ER, Golgi, fibres, membrane, dots, ...).

Weak labels, as on Kaggle: an image draws 1-3 patterns (class frequencies of the real
train.csv); each cell shows each pattern with probability `p_express`; a cell that shows none
is Negative (18). `train.csv` holds only the image-level union (an image whose cells all are
negative is labelled 18). The truth the competition hides is written too.

Output layout (`out/`):
    train/{ID}_{red,green,blue,yellow}.png   8- or 16-bit single-channel PNGs
    test/{ID}_{...}.png
    train.csv, sample_submission.csv         Kaggle layout
    truth/{ID}_cells.png, {ID}_nuclei.png    uint16 label images (cells and nuclei share IDs)
    cell_labels.csv                          ID,cell_id,Label (train and test)
    solution.csv                             test truth in the submission layout (confidence 1)
    manifest.json                            the config used and per-image facts

Deterministic for a seed, whatever the number of workers.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .classes import NEGATIVE, NUM_CLASSES, format_label
from .config import SynthConfig, config_to_dict
from .io import CHANNELS, atomic_write_text, to_uint8, to_uint16, write_cell_labels, write_labels, write_png

# Share of real train.csv images carrying each class 0-17 (Negative is drawn separately).
CLASS_FREQUENCY = np.array(
    [0.4034, 0.0502, 0.1124, 0.0579, 0.0653, 0.0822, 0.0355, 0.0847, 0.0442,
     0.0464, 0.0375, 0.0036, 0.0795, 0.1475, 0.0923, 0.0116, 0.2607, 0.0285]
)
MITOTIC_SPINDLE = 11


@dataclass
class CellGeometry:
    """Shape parameters of one cell; lengths in px."""

    center: np.ndarray  # (y, x)
    radius: float
    elongation: float
    angle: float
    harmonics: np.ndarray  # (k, 2): amplitude, phase for k = 2..
    nucleus_center: np.ndarray
    nucleus_radius: float
    nucleus_harmonics: np.ndarray
    mitotic: bool


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


# ----------------------------------------------------------------------------- geometry


def _shape_distance(yy: np.ndarray, xx: np.ndarray, center, radius, elongation, angle, harmonics) -> np.ndarray:
    """Normalised distance of pixels to a star-shaped, elongated blob: < 1 inside."""
    dy, dx = yy - center[0], xx - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    s = np.sqrt(elongation)
    rho = np.sqrt((u / s) ** 2 + (v * s) ** 2)
    phi = np.arctan2(v, u)
    r = np.ones_like(rho)
    for k, (amp, phase) in enumerate(harmonics, start=2):
        r += amp * np.cos(k * phi + phase)
    return rho / (radius * r)


def _sample_centers(rng: np.random.Generator, size: int, n: int, radius: float) -> np.ndarray:
    """Up to n cell centres (y, x), spaced >= 1.35 radius, some near or past the border."""
    centers: list[np.ndarray] = []
    lo, hi = -0.04 * size, 1.04 * size
    for _ in range(n * 60):
        if len(centers) == n:
            break
        c = rng.uniform(lo, hi, size=2)
        if all(np.hypot(*(c - o)) > 1.35 * radius for o in centers):
            centers.append(c)
    return np.array(centers).reshape(-1, 2)


def _make_geometry(rng: np.random.Generator, size: int, cfg: SynthConfig, mitotic_flags: list[bool]) -> list[CellGeometry]:
    base = cfg.cell_radius * size
    centers = _sample_centers(rng, size, len(mitotic_flags), base)
    cells = []
    for center, mitotic in zip(centers, mitotic_flags):
        radius = base * rng.uniform(0.8, 1.25)
        elongation = rng.uniform(1.0, 2.6)
        harmonics = np.stack([rng.uniform(0, 0.14, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
        n_radius = cfg.nucleus_ratio * base * rng.uniform(0.8, 1.1)
        if mitotic:
            radius *= 0.75
            elongation = rng.uniform(1.0, 1.3)
            n_radius *= 0.7
        offset = rng.normal(0, 0.12 * radius, size=2)
        cells.append(
            CellGeometry(
                center=center,
                radius=radius,
                elongation=elongation,
                angle=rng.uniform(0, np.pi),
                harmonics=harmonics,
                nucleus_center=center + offset,
                nucleus_radius=n_radius,
                nucleus_harmonics=np.stack([rng.uniform(0, 0.06, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1),
                mitotic=mitotic,
            )
        )
    return cells


def _bbox(center, reach: float, size: int) -> tuple[slice, slice]:
    y0, x0 = (max(0, int(c - reach)) for c in center)
    y1, x1 = (min(size, int(c + reach) + 1) for c in center)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _rasterise(cells: list[CellGeometry], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Label images (cells, nuclei) as int32 H x W; a pixel goes to the nearest shape."""
    best = np.full((size, size), np.inf, dtype=np.float32)
    labels = np.zeros((size, size), dtype=np.int32)
    nuclei = np.zeros((size, size), dtype=np.int32)
    for index, cell in enumerate(cells, start=1):
        reach = cell.radius * np.sqrt(cell.elongation) * 1.5
        ys, xs = _bbox(cell.center, reach, size)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        yy, xx = np.mgrid[ys, xs].astype(np.float32)
        d = _shape_distance(yy, xx, cell.center, cell.radius, cell.elongation, cell.angle, cell.harmonics)
        local_best = best[ys, xs]
        win = (d < 1.0) & (d < local_best)
        local_best[win] = d[win]
        labels[ys, xs][win] = index
    for index, cell in enumerate(cells, start=1):
        reach = cell.nucleus_radius * 1.6
        ys, xs = _bbox(cell.nucleus_center, reach, size)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        yy, xx = np.mgrid[ys, xs].astype(np.float32)
        e = 1.0 + (cell.elongation - 1.0) * 0.4
        d = _shape_distance(yy, xx, cell.nucleus_center, cell.nucleus_radius, e, cell.angle, cell.nucleus_harmonics)
        inside = (d < 1.0) & (labels[ys, xs] == index)
        nuclei[ys, xs][inside] = index
    return labels, nuclei


def _drop_small(labels: np.ndarray, nuclei: np.ndarray, min_cell: int, min_nucleus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove cells that are too small or whose nucleus is (almost) out of frame; relabel 1..N.

    Returns (cells, nuclei, kept) where kept[new_id - 1] is the old index.
    """
    n = int(labels.max())
    cell_area = np.bincount(labels.ravel(), minlength=n + 1)
    nucleus_area = np.bincount(nuclei.ravel(), minlength=n + 1)
    keep = np.flatnonzero((cell_area >= min_cell) & (nucleus_area >= min_nucleus))
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, dtype=np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1, dtype=np.uint16)
    return lut[labels], lut[nuclei], keep


# ----------------------------------------------------------------------------- textures


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (float32, shape `shape`).

    Large sigmas are made on a coarser grid and resized, so the cost stays O(pixels).
    """
    factor = max(1.0, sigma / 2.0)
    small = (max(2, int(np.ceil(shape[0] / factor))), max(2, int(np.ceil(shape[1] / factor))))
    noise = rng.standard_normal(small).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(sigma / factor, 0.3))
    if small != tuple(shape):
        noise = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return noise / (noise.std() + 1e-6)


def _spots(canvas: np.ndarray, rng: np.random.Generator, points: np.ndarray, radius: float, value=1.0) -> None:
    """Draw filled discs at (y, x) points onto canvas."""
    r = max(1, int(round(radius)))
    for y, x in points:
        cv2.circle(canvas, (int(x), int(y)), r, float(value * rng.uniform(0.6, 1.0)), -1, lineType=cv2.LINE_AA)


def _random_points_in(mask: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0 or n <= 0:
        return np.zeros((0, 2))
    pick = rng.integers(0, len(ys), size=n)
    return np.stack([ys[pick], xs[pick]], axis=1)


def _polyline(canvas: np.ndarray, points: np.ndarray, thickness: int, value: float) -> None:
    pts = np.round(points[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, float(value), thickness=max(1, thickness), lineType=cv2.LINE_AA)


def _radial_fibres(canvas, rng, origin, length, n, thickness, wobble=0.15) -> None:
    """Fibres from `origin` outwards, slightly curved (microtubule-like)."""
    for _ in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        bend = rng.normal(0, wobble)
        steps = np.linspace(0, 1, 12)
        angles = angle + bend * steps
        radii = length * rng.uniform(0.5, 1.2) * steps
        pts = np.stack([origin[0] + radii * np.sin(angles), origin[1] + radii * np.cos(angles)], axis=1)
        _polyline(canvas, pts, thickness, rng.uniform(0.5, 1.0))


def _wavy_fibres(canvas, rng, center, reach, n, thickness) -> None:
    """Long meandering fibres crossing the cell (intermediate-filament-like)."""
    for _ in range(n):
        start = center + rng.uniform(-reach, reach, 2)
        angle = rng.uniform(0, 2 * np.pi)
        pts = [start]
        for _ in range(16):
            angle += rng.normal(0, 0.35)
            pts.append(pts[-1] + reach / 8 * np.array([np.sin(angle), np.cos(angle)]))
        _polyline(canvas, np.array(pts), thickness, rng.uniform(0.5, 1.0))


def _parallel_fibres(canvas, rng, center, reach, angle, n, thickness) -> None:
    """Straight parallel stress fibres across the cell (actin-like)."""
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([direction[1], -direction[0]])
    for offset in np.linspace(-reach, reach, n):
        mid = center + normal * (offset + rng.normal(0, reach * 0.03))
        pts = np.stack([mid - direction * reach * 1.2, mid + direction * reach * 1.2])
        _polyline(canvas, pts, thickness, rng.uniform(0.4, 1.0))


def _dashes(canvas, rng, points, length, thickness) -> None:
    """Short wavy dashes (mitochondria-like)."""
    for p in points:
        angle = rng.uniform(0, 2 * np.pi)
        pts = [p]
        for _ in range(4):
            angle += rng.normal(0, 0.5)
            pts.append(pts[-1] + length / 4 * np.array([np.sin(angle), np.cos(angle)]))
        _polyline(canvas, np.array(pts), thickness, rng.uniform(0.5, 1.0))


def _ring(mask: np.ndarray, width: float, outer: bool = False) -> np.ndarray:
    """Band of `width` px inside the boundary of a binary mask (float32)."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    band = np.clip(1.0 - np.abs(inside - width * 0.6) / max(width, 1.0), 0, 1)
    return (band * mask).astype(np.float32)


# ----------------------------------------------------------------------------- one image


def _draw_cell(
    rng: np.random.Generator,
    cell: CellGeometry,
    cell_mask: np.ndarray,
    nucleus_mask: np.ndarray,
    origin: np.ndarray,
    patterns: tuple[int, ...],
    strength: dict[int, float],
    unit: float,
) -> dict[str, np.ndarray]:
    """Draw one cell's red, blue, yellow and green planes in its bounding box."""
    shape = cell_mask.shape
    local_center = cell.nucleus_center - origin
    cyto = cell_mask & ~nucleus_mask
    thin = max(1, int(round(unit)))
    planes = {c: np.zeros(shape, np.float32) for c in CHANNELS}

    # Nucleus with dark nucleoli.
    nucleoli_pts = _random_points_in(cv2.erode(nucleus_mask.astype(np.uint8), None, iterations=max(1, int(4 * unit))) > 0,
                                     rng, int(rng.integers(1, 5)))
    nucleoli = np.zeros(shape, np.float32)
    _spots(nucleoli, rng, nucleoli_pts, cell.nucleus_radius * 0.13)
    texture = 0.75 + 0.12 * _smooth_noise(rng, shape, 2 * unit)
    blue_level = 1.3 if cell.mitotic else 1.0
    planes["blue"] = nucleus_mask * np.clip(texture * blue_level - 0.45 * nucleoli, 0, None)

    # Microtubules: radial fibres, denser near the nucleus.
    fibres = np.zeros(shape, np.float32)
    _radial_fibres(fibres, rng, local_center, cell.radius * np.sqrt(cell.elongation) * 1.3, 70, thin)
    planes["red"] = (cyto + 0.15 * nucleus_mask) * (0.25 + 0.75 * cv2.GaussianBlur(fibres, (0, 0), 0.7 * unit))

    # ER: reticular texture, brightest around the nucleus.
    dist = np.hypot(*np.mgrid[0:shape[0], 0:shape[1]] - local_center.reshape(2, 1, 1)).astype(np.float32)
    falloff = np.exp(-np.maximum(dist - cell.nucleus_radius, 0) / (0.6 * cell.radius))
    reticulum = np.exp(-(_smooth_noise(rng, shape, 2.5 * unit) / 0.45) ** 2)
    er = (cyto + 0.2 * nucleus_mask) * falloff * (0.3 + 0.7 * reticulum)
    planes["yellow"] = er

    green = np.zeros(shape, np.float32)
    for cls in patterns:
        g = np.zeros(shape, np.float32)
        s = strength[cls] * rng.uniform(0.7, 1.15)
        if cls == 0:  # nucleoplasm
            g = nucleus_mask * np.clip(0.8 + 0.15 * _smooth_noise(rng, shape, 3 * unit) - 0.7 * nucleoli, 0, None)
        elif cls == 1:  # nuclear membrane
            g = _ring(nucleus_mask, 2.5 * unit) * 1.2
        elif cls == 2:  # nucleoli
            g = nucleoli * 1.2
        elif cls == 3:  # nucleoli fibrillar centre: tiny dots inside nucleoli
            _spots(g, rng, _random_points_in(nucleoli > 0.5, rng, 6 * max(1, len(nucleoli_pts))), 0.9 * unit, 1.3)
        elif cls == 4:  # nuclear speckles
            _spots(g, rng, _random_points_in(nucleus_mask, rng, int(rng.integers(15, 30))), 1.6 * unit)
            g = cv2.GaussianBlur(g, (0, 0), unit) * 1.3
        elif cls == 5:  # nuclear bodies
            _spots(g, rng, _random_points_in(nucleus_mask, rng, int(rng.integers(2, 6))), 2.0 * unit, 1.3)
        elif cls == 6:  # ER
            g = er * 1.1
        elif cls == 7:  # Golgi: compact perinuclear cluster on one side
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.3 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            pts = spot + rng.normal(0, 0.25 * cell.nucleus_radius, size=(25, 2))
            _spots(g, rng, pts, 2.2 * unit)
            g = cv2.GaussianBlur(g, (0, 0), unit) * 1.3
        elif cls == 8:  # intermediate filaments
            _wavy_fibres(g, rng, local_center, cell.radius, 18, thin)
        elif cls == 9:  # actin: parallel stress fibres, bright rim
            _parallel_fibres(g, rng, local_center, cell.radius * np.sqrt(cell.elongation), cell.angle, 14, thin)
            g = g + 0.6 * _ring(cell_mask, 3 * unit)
        elif cls == 10:  # microtubules
            g = fibres.copy()
        elif cls == MITOTIC_SPINDLE:  # spindle between two poles
            axis = rng.uniform(0, np.pi)
            pole = 0.9 * cell.nucleus_radius * np.array([np.sin(axis), np.cos(axis)])
            for _ in range(24):
                bulge = rng.normal(0, 0.35 * cell.nucleus_radius)
                mid = local_center + bulge * np.array([np.cos(axis), -np.sin(axis)])
                _polyline(g, np.stack([local_center - pole, mid, local_center + pole]), thin, rng.uniform(0.6, 1.0))
        elif cls == 12:  # centrosome: one or two bright dots by the nucleus
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.15 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            _spots(g, rng, spot + rng.normal(0, 1.5 * unit, size=(int(rng.integers(1, 3)), 2)), 2.5 * unit, 1.5)
        elif cls == 13:  # plasma membrane
            g = _ring(cell_mask, 3 * unit) * 1.2
        elif cls == 14:  # mitochondria
            _dashes(g, rng, _random_points_in(cyto, rng, 60), 0.18 * cell.radius, thin)
        elif cls == 15:  # aggresome: one big perinuclear blob
            angle = rng.uniform(0, 2 * np.pi)
            spot = local_center + 1.4 * cell.nucleus_radius * np.array([np.sin(angle), np.cos(angle)])
            _spots(g, rng, spot[None], 0.35 * cell.nucleus_radius, 1.4)
        elif cls == 16:  # cytosol
            g = cyto * np.clip(0.6 + 0.1 * _smooth_noise(rng, shape, 4 * unit), 0, None)
        elif cls == 17:  # vesicles
            _spots(g, rng, _random_points_in(cyto, rng, int(rng.integers(40, 80))), 1.3 * unit)
        green += s * g * cell_mask
    planes["green"] = green
    return planes


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
    mitotic = [bool(spindle and express[i, spindle[0]]) or rng.random() < 0.02 for i in range(n_cells)]
    strength = {c: float(rng.uniform(0.45, 1.0)) for c in patterns}

    geometry = _make_geometry(rng, size, cfg, mitotic)
    labels, nuclei = _rasterise(geometry, size)
    area_scale = (size / 2048.0) ** 2
    cells, nuclei, kept = _drop_small(labels, nuclei, int(5500 * area_scale), int(1500 * area_scale))

    planes = {c: np.zeros((size, size), np.float32) for c in CHANNELS}
    cell_labels: dict[int, tuple[int, ...]] = {}
    for new_id, old_index in enumerate(kept, start=1):
        cell = geometry[old_index - 1]
        row = express[old_index - 1]
        shown = tuple(c for c, e in zip(patterns, row) if e)
        if MITOTIC_SPINDLE in shown and not cell.mitotic:
            shown = tuple(c for c in shown if c != MITOTIC_SPINDLE)
        cell_labels[new_id] = shown if shown else (NEGATIVE,)
        ys, xs = _bbox(cell.center, cell.radius * np.sqrt(cell.elongation) * 1.5, size)
        local_cells = cells[ys, xs] == new_id
        local_nucleus = nuclei[ys, xs] == new_id
        drawn = _draw_cell(rng, cell, local_cells, local_nucleus, np.array([ys.start, xs.start]), shown, strength, unit)
        for c in CHANNELS:
            planes[c][ys, xs] += drawn[c]

    rgby = _finish_channels(rng, planes, size, unit, cfg.noise)
    union = sorted({c for labs in cell_labels.values() for c in labs if c != NEGATIVE})
    image_labels = tuple(union) if union else (NEGATIVE,)
    return SynthImage(image_id, rgby, cells, nuclei, cell_labels, image_labels, bits)


def _finish_channels(rng, planes: dict[str, np.ndarray], size: int, unit: float, noise: float) -> np.ndarray:
    """Optics: blur, uneven illumination, per-channel gain, background and noise -> H x W x 4."""
    illumination = 0.75 + 0.25 * np.tanh(_smooth_noise(rng, (size, size), size / 6))
    out = np.empty((size, size, 4), np.float32)
    for i, c in enumerate(CHANNELS):
        plane = cv2.GaussianBlur(planes[c], (0, 0), 0.8 * unit)
        gain = rng.uniform(0.35, 0.8) if c != "green" else rng.uniform(0.5, 0.9)
        plane = plane * gain * illumination + rng.uniform(0.005, 0.03)
        plane = plane + rng.normal(0, noise, plane.shape).astype(np.float32) * np.sqrt(np.clip(plane, 0.02, None) * 4)
        out[..., i] = np.clip(plane, 0, 1)
    return out


# ----------------------------------------------------------------------------- data set


@dataclass
class ImageRecord:
    """What the data-set writer keeps of one generated image."""

    image_id: str
    split: str
    size: int
    bits: int
    image_labels: tuple[int, ...]
    cell_labels: dict[int, tuple[int, ...]]
    tokens: dict[int, str]


def _image_task(args: tuple) -> ImageRecord:
    seed, split, size, bits, cfg, out = args
    image = generate_image(seed, size, cfg, bits)
    folder = Path(out) / split
    convert = to_uint16 if bits == 16 else to_uint8
    for i, c in enumerate(CHANNELS):
        write_png(folder / f"{image.image_id}_{c}.png", convert(image.rgby[..., i]))
    truth = Path(out) / "truth"
    write_png(truth / f"{image.image_id}_cells.png", image.cells)
    write_png(truth / f"{image.image_id}_nuclei.png", image.nuclei)
    from .encode import encode_label_image

    tokens = encode_label_image(image.cells) if split == "test" else {}
    return ImageRecord(image.image_id, split, size, bits, image.image_labels, image.cell_labels, tokens)


def plan_dataset(cfg: SynthConfig) -> list[tuple]:
    """Per-image (seed, split, size, bits) in a fixed order, independent of workers."""
    root = np.random.SeedSequence(cfg.seed)
    plan_rng = np.random.default_rng(root.spawn(1)[0])
    children = root.spawn(cfg.n_train + cfg.n_test + 1)[1:]
    plan = []
    for i, child in enumerate(children):
        split = "train" if i < cfg.n_train else "test"
        size = int(plan_rng.choice(cfg.sizes))
        bits = 16 if plan_rng.random() < cfg.fraction_16bit else 8
        plan.append((child, split, size, bits))
    return plan


def generate_dataset(cfg: SynthConfig, out: str | Path, progress: bool = True, workers: Optional[int] = None) -> list[ImageRecord]:
    """Generate the whole data set into `out` (see module docstring); returns its records."""
    from tqdm import tqdm

    from .submission import Prediction, write_submission

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, split, size, bits, cfg, str(out)) for seed, split, size, bits in plan_dataset(cfg)]
    workers = cfg.workers if workers is None else workers
    bar = dict(total=len(tasks), desc="synth", unit="img", disable=not progress)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = list(tqdm(pool.map(_image_task, tasks), **bar))
    else:
        records = [_image_task(t) for t in tqdm(tasks, **bar)]

    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    write_labels(out / "train.csv", {r.image_id: r.image_labels for r in train})
    write_cell_labels(out / "cell_labels.csv",
                      {(r.image_id, cid): labs for r in records for cid, labs in sorted(r.cell_labels.items())})

    from .encode import empty_mask_token

    sample = "ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(
        f"{r.image_id},{r.size},{r.size},0 1 {empty_mask_token(r.size, r.size)}\n" for r in test
    )
    atomic_write_text(out / "sample_submission.csv", sample)
    solution = {
        r.image_id: [Prediction(label, 1.0, r.tokens[cid]) for cid, labs in sorted(r.cell_labels.items()) for label in labs]
        for r in test
    }
    write_submission(out / "solution.csv", [(r.image_id, r.size, r.size) for r in test], solution)
    manifest = {
        "config": config_to_dict(cfg),
        "images": [
            {"ID": r.image_id, "split": r.split, "size": r.size, "bits": r.bits, "cells": len(r.cell_labels),
             "labels": format_label(r.image_labels)}
            for r in records
        ],
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return records


def summarize(records: list[ImageRecord]) -> dict:
    """Counts for a printed summary: images per split, cells, label frequencies."""
    counts = np.zeros(NUM_CLASSES, int)
    for r in records:
        for c in r.image_labels:
            counts[c] += 1
    return {
        "train_images": sum(r.split == "train" for r in records),
        "test_images": sum(r.split == "test" for r in records),
        "cells": sum(len(r.cell_labels) for r in records),
        "negative_cells": sum(labs == (NEGATIVE,) for r in records for labs in r.cell_labels.values()),
        "sizes": sorted({r.size for r in records}),
        "bits": sorted({r.bits for r in records}),
        "image_label_counts": counts.tolist(),
    }
