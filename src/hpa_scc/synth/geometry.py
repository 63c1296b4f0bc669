"""Cell shapes of the synthetic images: star-shaped elongated blobs, placed and rasterised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpa_scc.core.config_images import SynthConfig


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
    nucleus_elongation: float = 1.0  # of the nucleus outline, along the cell's angle


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


def _sample_centers(rng: np.random.Generator, size: int, n: int, radius: float, spacing: float) -> np.ndarray:
    """Up to n cell centres (y, x), spaced > `spacing` x radius, some near or past the border."""
    centers: list[np.ndarray] = []
    lo, hi = -0.04 * size, 1.04 * size
    for _ in range(n * 60):
        if len(centers) == n:
            break
        c = rng.uniform(lo, hi, size=2)
        if all(np.hypot(*(c - o)) > spacing * radius for o in centers):
            centers.append(c)
    return np.array(centers).reshape(-1, 2)


def make_geometry(rng: np.random.Generator, size: int, cfg: SynthConfig, mitotic_flags: list[bool]) -> list[CellGeometry]:
    base = cfg.cell_radius * size
    centers = _sample_centers(rng, size, len(mitotic_flags), base, cfg.spacing)
    common_angle = rng.uniform(0, np.pi) if cfg.alignment > 0 else 0.0  # drawn only when used: other settings keep their images
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
        angle = rng.uniform(0, np.pi)
        if cfg.alignment > 0:  # the shorter way round from the common direction, shrunk by the alignment
            angle = common_angle + (1.0 - cfg.alignment) * ((angle - common_angle + np.pi / 2) % np.pi - np.pi / 2)
        cells.append(
            CellGeometry(
                center=center,
                radius=radius,
                elongation=elongation,
                angle=angle,
                harmonics=harmonics,
                nucleus_center=center + offset,
                nucleus_radius=n_radius,
                nucleus_harmonics=np.stack([rng.uniform(0, cfg.nucleus_lobes, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1),
                mitotic=mitotic,
                nucleus_elongation=1.0 + (elongation - 1.0) * cfg.nucleus_elongation,
            )
        )
    return cells


def box_around(center, reach: float, size: int) -> tuple[slice, slice]:
    y0, x0 = (max(0, int(c - reach)) for c in center)
    y1, x1 = (min(size, int(c + reach) + 1) for c in center)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def rasterise(cells: list[CellGeometry], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Label images (cells, nuclei) as int32 H x W; a pixel goes to the nearest shape."""
    best = np.full((size, size), np.inf, dtype=np.float32)
    labels = np.zeros((size, size), dtype=np.int32)
    nuclei = np.zeros((size, size), dtype=np.int32)
    for index, cell in enumerate(cells, start=1):
        reach = cell.radius * np.sqrt(cell.elongation) * 1.5
        ys, xs = box_around(cell.center, reach, size)
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
        ys, xs = box_around(cell.nucleus_center, reach, size)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        yy, xx = np.mgrid[ys, xs].astype(np.float32)
        d = _shape_distance(yy, xx, cell.nucleus_center, cell.nucleus_radius, cell.nucleus_elongation, cell.angle,
                            cell.nucleus_harmonics)
        inside = (d < 1.0) & (labels[ys, xs] == index)
        nuclei[ys, xs][inside] = index
    return labels, nuclei
