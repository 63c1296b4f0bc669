"""Pictures and pages for people: RGB composites, segmentation overlays, previews, an HTML report.

Composite colours follow the HPA convention: red = microtubules (+ half of yellow),
green = protein of interest (+ half of yellow), blue = nucleus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.files import atomic_path
from hpa_scc.segment.labels import label_changes


def composite(rgby: np.ndarray, gain: float = 1.5) -> np.ndarray:
    """float H x W x 4 (R, G, B, Y in [0, 1]) -> uint8 H x W x 3 RGB picture."""
    r, g, b, y = (rgby[..., i] for i in range(4))
    rgb = np.stack([r + 0.5 * y, g + 0.5 * y, b], axis=-1) * gain
    return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)


def outline(labels: np.ndarray) -> np.ndarray:
    """bool H x W: pixels on the border of any labelled region."""
    lab = labels.astype(np.int32)
    edge = label_changes(lab)
    return edge & (lab > 0) | edge & (np.roll(lab, 1, 0) > 0)


def overlay(rgb: np.ndarray, labels: np.ndarray, colour=(255, 255, 255), thickness: int = 1,
            cell_colours: Optional[dict[int, tuple[int, int, int]]] = None) -> np.ndarray:
    """Draw cell outlines (and optional per-cell colours, 35% fill) on an RGB uint8 picture."""
    out = rgb.copy()
    if cell_colours:
        fill = np.zeros_like(out)
        for cell_id, c in cell_colours.items():
            fill[labels == cell_id] = c
        mask = labels > 0
        out[mask] = (0.65 * out[mask] + 0.35 * fill[mask]).astype(np.uint8)
    edge = outline(labels)
    if thickness > 1:
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((thickness, thickness), np.uint8)) > 0
    out[edge] = colour
    return out


def save_rgb(path: str | Path, rgb: np.ndarray, max_side: Optional[int] = None) -> Path:
    """Write an RGB uint8 picture as PNG (atomically), optionally shrunk to `max_side`."""
    if max_side and max(rgb.shape[:2]) > max_side:
        scale = max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".png", rgb[..., ::-1])
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.tobytes())
    return Path(path)


def side_by_side(pictures: Sequence[np.ndarray], side: int = 384, gap: int = 4) -> np.ndarray:
    """Resize RGB pictures to side x side and join them horizontally with a white gap."""
    tiles = []
    for pic in pictures:
        tiles.append(cv2.resize(pic, (side, side), interpolation=cv2.INTER_AREA))
        tiles.append(np.full((side, gap, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def label_colours() -> list[tuple[int, int, int]]:
    """NUM_CLASSES (19) distinct RGB colours, one per class (matplotlib tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [tuple(int(255 * v) for v in cmap(k)[:3]) for k in range(NUM_CLASSES)]


def outline_width(shape: tuple[int, ...]) -> int:
    """Outline thickness (px) for a picture of this shape: about 1 px per 500 px of its longer side."""
    return max(1, round(max(shape[:2]) / 500))


def top_label_overlay(rgby: np.ndarray, cells: np.ndarray, top_labels: dict[int, int]) -> np.ndarray:
    """RGB uint8 composite with every cell filled in the colour of its top label, outlined in white."""
    colours = label_colours()
    thickness = outline_width(cells.shape)
    return overlay(composite(rgby), cells, (255, 255, 255), thickness,
                   cell_colours={cell: colours[label] for cell, label in top_labels.items()})


REFERENCE_OUTLINE = (0, 255, 255)  # cyan: a grey picture never holds it
PROJECT_OUTLINE = (255, 0, 255)  # magenta
MISSED_FILL = (230, 40, 40)  # reference cells the project did not find (red)
EXTRA_FILL = (250, 210, 0)  # project cells with no reference cell (yellow)
MATCHED_FILL = (90, 90, 90)  # cells found by both (dark grey)


def agreement_panels(rgb: np.ndarray, pred: np.ndarray, reference: np.ndarray, missed: list[int],
                     extra: list[int]) -> np.ndarray:
    """Three panels side by side, uint8 H x (3W + 2 gaps) x 3, that tell missed and extra cells apart:
    the picture in grey with reference outlines cyan and project outlines magenta (colours a grey
    picture never holds); the reference cells on black, matched ones dark grey and missed ones red;
    the project's cells, matched ones dark grey and extra ones (no reference match) yellow."""
    grey = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    thickness = outline_width(rgb.shape)
    outlines = overlay(overlay(grey, reference, REFERENCE_OUTLINE, thickness + 1), pred, PROJECT_OUTLINE, thickness)

    def errors(labels: np.ndarray, wrong: list[int], fill: tuple[int, int, int], line: tuple[int, int, int]) -> np.ndarray:
        panel = np.zeros_like(rgb)
        panel[labels > 0] = MATCHED_FILL
        panel[np.isin(labels, list(wrong)) & (labels > 0)] = fill
        return overlay(panel, labels, line, thickness)

    gap = np.full((rgb.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([outlines, gap, errors(reference, missed, MISSED_FILL, REFERENCE_OUTLINE), gap,
                           errors(pred, extra, EXTRA_FILL, PROJECT_OUTLINE)], axis=1)
