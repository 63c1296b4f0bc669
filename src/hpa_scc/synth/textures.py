"""Drawing primitives of the synthetic images: smooth noise, spots, fibres, dashes, rings."""

from __future__ import annotations

import cv2
import numpy as np

from hpa_scc.segment.labels import object_contacts


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
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


def spots(canvas: np.ndarray, rng: np.random.Generator, points: np.ndarray, radius: float, value=1.0) -> None:
    """Draw filled discs at (y, x) points onto canvas."""
    r = max(1, int(round(radius)))
    for y, x in points:
        cv2.circle(canvas, (int(x), int(y)), r, float(value * rng.uniform(0.6, 1.0)), -1, lineType=cv2.LINE_AA)


def random_points_in(mask: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0 or n <= 0:
        return np.zeros((0, 2))
    pick = rng.integers(0, len(ys), size=n)
    return np.stack([ys[pick], xs[pick]], axis=1)


def polyline(canvas: np.ndarray, points: np.ndarray, thickness: int, value: float) -> None:
    pts = np.round(points[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, float(value), thickness=max(1, thickness), lineType=cv2.LINE_AA)


def radial_fibres(canvas, rng, origin, length, n, thickness, wobble=0.15) -> None:
    """Fibres from `origin` outwards, slightly curved (microtubule-like)."""
    for _ in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        bend = rng.normal(0, wobble)
        steps = np.linspace(0, 1, 12)
        angles = angle + bend * steps
        radii = length * rng.uniform(0.5, 1.2) * steps
        pts = np.stack([origin[0] + radii * np.sin(angles), origin[1] + radii * np.cos(angles)], axis=1)
        polyline(canvas, pts, thickness, rng.uniform(0.5, 1.0))


def wavy_fibres(canvas, rng, center, reach, n, thickness) -> None:
    """Long meandering fibres crossing the cell (intermediate-filament-like)."""
    for _ in range(n):
        start = center + rng.uniform(-reach, reach, 2)
        angle = rng.uniform(0, 2 * np.pi)
        pts = [start]
        for _ in range(16):
            angle += rng.normal(0, 0.35)
            pts.append(pts[-1] + reach / 8 * np.array([np.sin(angle), np.cos(angle)]))
        polyline(canvas, np.array(pts), thickness, rng.uniform(0.5, 1.0))


def parallel_fibres(canvas, rng, center, reach, angle, n, thickness) -> None:
    """Straight parallel stress fibres across the cell (actin-like)."""
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([direction[1], -direction[0]])
    for offset in np.linspace(-reach, reach, n):
        mid = center + normal * (offset + rng.normal(0, reach * 0.03))
        pts = np.stack([mid - direction * reach * 1.2, mid + direction * reach * 1.2])
        polyline(canvas, pts, thickness, rng.uniform(0.4, 1.0))


def dashes(canvas, rng, points, length, thickness) -> None:
    """Short wavy dashes (mitochondria-like)."""
    for p in points:
        angle = rng.uniform(0, 2 * np.pi)
        pts = [p]
        for _ in range(4):
            angle += rng.normal(0, 0.5)
            pts.append(pts[-1] + length / 4 * np.array([np.sin(angle), np.cos(angle)]))
        polyline(canvas, np.array(pts), thickness, rng.uniform(0.5, 1.0))


def ring(mask: np.ndarray, width: float, outer: bool = False) -> np.ndarray:
    """Band of `width` px inside the boundary of a binary mask (float32)."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    band = np.clip(1.0 - np.abs(inside - width * 0.6) / max(width, 1.0), 0, 1)
    return (band * mask).astype(np.float32)


def contact_seam(labels: np.ndarray, width: float) -> np.ndarray:
    """float32 H x W in [0, 1]: 1 on the line where two different objects of a label image touch,
    falling linearly to 0 at `width` / 2 px from it (0 where objects meet only the background)."""
    contact = object_contacts(labels)
    if not contact.any() or width <= 0:
        return np.zeros(labels.shape, np.float32)
    distance = cv2.distanceTransform((~contact).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - distance / max(width / 2.0, 0.5), 0.0, 1.0).astype(np.float32)
