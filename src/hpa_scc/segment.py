"""Segmentation: RGBY image -> uint16 cell and nucleus label images, and the mask cache.

    hpa-scc segment --images data/demo/test --out data/demo/masks --workers 2

Backends (config `segment.backend`):
- `classical` (default, no weights): at `scale` (0.25) of full resolution, nuclei are the
  blue channel above a scaled Otsu threshold, split where touching by a watershed of their
  distance transform; cells are the red + yellow (+ blue) signal above a scaled Otsu
  threshold, grown from the nuclei by a seeded watershed of the smoothed intensity, at most
  `cell_max_distance` from their nucleus; small objects are dropped; labels are upsampled.
- `hpacellseg`: the official HPA-Cell-Segmentation U-Nets (package and local weight files
  required), whose [background, border, object] probability maps are turned into labels by
  `labels_from_probabilities` (this project's re-implementation of the `label_cell` idea).
Areas and distances in the config are px at 2048 x 2048 and scale with the image side.
Cells and nuclei share IDs 1..N; 0 is background; zero cells is a valid result.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from .config import SegmentConfig, config_to_dict
from .errors import BatchFailures, InputError, describe
from .io import (atomic_write_text, read_label_png, read_rgby, remove_stale_temp_files, settings_hash, validate_id,
                 write_png)

REFERENCE_SIDE = 2048.0


@dataclass
class Segmentation:
    """Label images at full resolution: cells and nuclei (uint16 H x W, shared IDs)."""

    cells: np.ndarray
    nuclei: np.ndarray

    @property
    def n_cells(self) -> int:
        return int(self.cells.max()) if self.cells.size else 0


# ----------------------------------------------------------------------------- helpers


def _resize(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(plane, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _upsample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image to `shape` (uint16)."""
    if labels.shape == tuple(shape):
        return labels.astype(np.uint16)
    return cv2.resize(labels.astype(np.uint16), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


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


def _fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        region = ndimage.binary_fill_holes(labels[box] == index)
        out[box][region & (labels[box] == 0)] = index
    return out


def relabel_sequential(cells: np.ndarray, nuclei: np.ndarray, min_cell: float, min_nucleus: float) -> Segmentation:
    """Drop cells (and their nuclei) smaller than the given areas (px at this scale); IDs 1..N."""
    n = int(max(cells.max(), nuclei.max())) if cells.size else 0
    cell_area = np.bincount(cells.ravel(), minlength=n + 1)
    nucleus_area = np.bincount(nuclei.ravel(), minlength=n + 1)
    keep = np.flatnonzero((cell_area >= min_cell) & (nucleus_area >= min_nucleus))
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, dtype=np.uint16)
    lut[keep] = np.arange(1, len(keep) + 1)
    return Segmentation(lut[cells], lut[nuclei])


# ----------------------------------------------------------------------------- classical


def segment_nuclei(blue: np.ndarray, cfg: SegmentConfig, px: float, min_area: float) -> np.ndarray:
    """Blue plane at working scale -> int32 nucleus labels, touching nuclei split.

    px: working-scale pixels per 2048-reference pixel; min_area in working-scale px.
    """
    smooth = cv2.GaussianBlur(blue, (0, 0), cfg.nucleus_smooth * px * 4)
    mask = smooth > _threshold(smooth, cfg.nucleus_threshold)
    opening = np.ones((cfg.nucleus_open, cfg.nucleus_open), np.uint8)
    mask = ndimage.binary_fill_holes(cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, opening) > 0)
    mask = _remove_small(mask, min_area * 0.5)
    if not mask.any():
        return np.zeros(blue.shape, np.int32)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    distance = cv2.GaussianBlur(distance, (0, 0), cfg.distance_smooth * px * 4)
    typical_radius = np.sqrt(min_area / np.pi) * 1.2
    depth = cfg.split_footprint * typical_radius * 0.5
    seeds = _h_maxima_seeds(distance, depth, max(1, int(cfg.split_min_distance * px)), mask)
    labels = watershed(-distance, seeds, mask=mask)
    return labels.astype(np.int32)


def _h_maxima_seeds(surface: np.ndarray, depth: float, min_distance: int, mask: np.ndarray) -> np.ndarray:
    """Markers at regional maxima of `surface` that stand at least `depth` above their saddle."""
    from skimage.morphology import h_maxima

    peaks = h_maxima(surface.astype(np.float64), depth) > 0
    peaks &= mask
    if min_distance > 1:
        peaks = cv2.dilate(peaks.astype(np.uint8), np.ones((min_distance, min_distance), np.uint8)) > 0
        peaks &= mask & (surface >= depth * 0.5)
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


def _remove_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    area = np.bincount(labels.ravel())
    keep = area >= min_area
    keep[0] = False
    return keep[labels]


def cell_signal(rgby_small: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """Cytoplasm signal at working scale: mean of normalised red and yellow plus a little blue."""
    red, yellow, blue = (_normalise(rgby_small[..., c], cfg.normalise_percentile) for c in (0, 3, 2))
    w_red, w_yellow, w_blue = cfg.cell_channel_weights
    return w_red * red + w_yellow * yellow + w_blue * blue


def segment_classical(rgby: np.ndarray, cfg: SegmentConfig) -> Segmentation:
    """RGBY float H x W x 4 -> full-resolution Segmentation (see module docstring)."""
    _check_rgby(rgby)
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

    signal = cv2.GaussianBlur(cell_signal(small, cfg), (0, 0), cfg.cell_smooth * px * 4)
    foreground = signal > _threshold(signal, cfg.cell_threshold, log_floor=cfg.cell_signal_floor)
    foreground |= nuclei > 0
    reach = cv2.distanceTransform((nuclei == 0).astype(np.uint8), cv2.DIST_L2, 5)
    foreground &= reach <= cfg.cell_max_distance * px
    foreground = ndimage.binary_fill_holes(foreground)
    # Flood from the nuclei over the inverted intensity, plus a distance term that keeps a cell
    # from leaking far past a neighbour's nucleus.
    surface = -signal / (signal.max() + 1e-6) + cfg.cell_distance_weight * reach / (cfg.cell_max_distance * px)
    cells = watershed(surface, nuclei, mask=foreground)
    cells = _fill_holes_per_label(cells.astype(np.int32))
    nuclei = np.where(cells == nuclei, nuclei, 0)
    result = relabel_sequential(cells, nuclei, min_cell, min_nucleus)
    return Segmentation(_upsample_labels(result.cells, (height, width)), _upsample_labels(result.nuclei, (height, width)))


def _check_rgby(rgby: np.ndarray) -> None:
    if rgby.ndim != 3 or rgby.shape[2] != 4:
        raise InputError(f"expected an H x W x 4 RGBY image, got shape {rgby.shape}")


# ----------------------------------------------------------------------------- network backend


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
    seeds_mask = _remove_small(seed_map > cfg.seed_threshold, min_nucleus * 0.5)
    nuclei_mask = _remove_small(nuclei_prob[..., 2] + nuclei_prob[..., 1] > cfg.nucleus_prob_threshold,
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
    cells = _fill_holes_per_label(cells.astype(np.int32))
    nuclei = np.where(cells == nuclei, nuclei, 0)
    result = relabel_sequential(cells, nuclei, min_cell, min_nucleus)
    return Segmentation(_upsample_labels(result.cells, (height, width)), _upsample_labels(result.nuclei, (height, width)))


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
        _check_rgby(rgby)
        red, blue, yellow = rgby[..., 0], rgby[..., 2], rgby[..., 3]
        nuclei_prob = self.segmentator.pred_nuclei([blue])[0] / 255.0
        cell_prob = self.segmentator.pred_cells([[red], [yellow], [blue]])[0] / 255.0
        shape = nuclei_prob.shape[:2]
        cell_prob = cv2.resize(cell_prob, (shape[1], shape[0])) if cell_prob.shape[:2] != shape else cell_prob
        return labels_from_probabilities(nuclei_prob, cell_prob, self.cfg, rgby.shape[:2])


def make_segmenter(cfg: SegmentConfig) -> Callable[[np.ndarray], Segmentation]:
    """Backend named by the config, as a function RGBY -> Segmentation."""
    if cfg.backend == "hpacellseg":
        return HpaCellSegBackend(cfg)
    return lambda rgby: segment_classical(rgby, cfg)


@functools.lru_cache(maxsize=4)
def shared_segmenter(cfg: SegmentConfig) -> Callable[[np.ndarray], Segmentation]:
    """The segmenter for these settings, built once per process (the hpacellseg backend loads its
    weights once per worker, not once per image)."""
    return make_segmenter(cfg)


def segment_image(rgby: np.ndarray, cfg: SegmentConfig) -> Segmentation:
    """Segment one RGBY image with the configured backend (built once per process)."""
    return shared_segmenter(cfg)(rgby)


# ----------------------------------------------------------------------------- mask cache


def mask_settings_key(cfg: SegmentConfig) -> str:
    """Hash of the settings that change masks (not the worker count)."""
    return settings_hash({k: v for k, v in config_to_dict(cfg).items() if k != "workers"})


def mask_paths(mask_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """(cells, nuclei) PNG paths of an ID in a mask folder."""
    mask_dir = Path(mask_dir)
    return mask_dir / f"{image_id}_cells.png", mask_dir / f"{image_id}_nuclei.png"


def read_masks(mask_dir: str | Path, image_id: str) -> Segmentation:
    """Read cached masks of one ID (InputError if absent)."""
    cells_path, nuclei_path = mask_paths(mask_dir, validate_id(image_id))
    if not cells_path.is_file():
        raise InputError(f"image {image_id}: no cached mask {cells_path} (run hpa-scc segment first)")
    cells = read_label_png(cells_path)
    nuclei = read_label_png(nuclei_path) if nuclei_path.is_file() else np.zeros_like(cells)
    return Segmentation(cells.astype(np.uint16), nuclei.astype(np.uint16))


def write_masks(mask_dir: str | Path, image_id: str, seg: Segmentation) -> None:
    """Cache one ID's masks: nuclei first, then cells (the cells file marks the ID done)."""
    cells_path, nuclei_path = mask_paths(mask_dir, image_id)
    write_png(nuclei_path, seg.nuclei)
    write_png(cells_path, seg.cells)


def cached_segmentation(rgby: np.ndarray, image_id: str, mask_dir: Optional[str | Path], cfg: SegmentConfig) -> Segmentation:
    """Masks of one image: from the cache when present, else segmented (and cached if `mask_dir`).
    An unreadable cached mask (or one of another size) is segmented again, with a warning."""
    if mask_dir is not None and mask_paths(mask_dir, validate_id(image_id))[0].is_file():
        try:
            cached = read_masks(mask_dir, image_id)
            if cached.cells.shape == rgby.shape[:2]:
                return cached
            problem = f"is {cached.cells.shape[1]}x{cached.cells.shape[0]}, the image {rgby.shape[1]}x{rgby.shape[0]}"
        except InputError as error:
            problem = f"is unreadable ({error})"
        import warnings

        warnings.warn(f"cached mask {mask_paths(mask_dir, image_id)[0]} {problem}; segmenting image {image_id} again")
    seg = segment_image(rgby, cfg)
    if mask_dir is not None:
        write_masks(mask_dir, image_id, seg)
    return seg


def _segment_task(args: tuple) -> tuple[str, Optional[int], str]:
    """Worker: read, segment, write the masks -> (ID, cells, "") or (ID, None, what went wrong)."""
    images, image_id, out, cfg = args
    try:
        seg = segment_image(read_rgby(images, image_id), cfg)
        write_masks(out, image_id, seg)
    except Exception as error:  # noqa: BLE001 - reported per image; the batch goes on
        return image_id, None, describe(error)
    return image_id, seg.n_cells, ""


MANIFEST = "segment_manifest.json"


def record_mask_settings(out: Path, cfg: SegmentConfig, force: bool = False) -> None:
    """Record the settings of a mask folder; InputError if it holds masks made with others."""
    path = out / MANIFEST
    key = mask_settings_key(cfg)
    if path.is_file() and not force:
        try:
            recorded = json.loads(path.read_text()).get("settings_key")
        except json.JSONDecodeError:
            recorded = None
        if recorded != key:
            raise InputError(
                f"{out} holds masks made with other segmentation settings ({path}); "
                "use another --out folder or --force to redo them"
            )
    atomic_write_text(path, json.dumps({"settings_key": key, "settings": config_to_dict(cfg)}, indent=1))


def segment_folder(
    images: str | Path,
    out: str | Path,
    cfg: SegmentConfig,
    ids: Optional[Iterable[str]] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    force: bool = False,
    progress: bool = True,
    fail_fast: bool = False,
) -> dict[str, int]:
    """Segment every ID (default: all in `images`) into `out`; returns {ID: cells} for new work.

    IDs whose cells PNG exists (for the same settings) are skipped, so a killed run resumes.
    `scheduler`: a Dask distributed address ("tcp://host:8786") or a `distributed.Client`.
    A bad image does not stop the others: BatchFailures is raised once every other image is
    done (fail_fast: InputError at the first bad image).
    """
    from tqdm import tqdm

    from .io import list_image_ids
    from .tasks import run_tasks

    images, out = Path(images), Path(out)
    ids = list(ids) if ids is not None else list_image_ids(images)
    for image_id in ids:
        validate_id(image_id)
    out.mkdir(parents=True, exist_ok=True)
    record_mask_settings(out, cfg, force)
    remove_stale_temp_files(out)
    todo = [i for i in ids if force or not mask_paths(out, i)[0].is_file()]
    tasks = [(str(images), i, str(out), cfg) for i in todo]
    workers = cfg.workers if workers is None else workers
    done: dict[str, int] = {}
    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(tasks), desc="segment", unit="img", disable=not progress)
    try:
        for image_id, n, problem in run_tasks(_segment_task, tasks, workers, scheduler):
            bar.update()
            if n is None:
                if fail_fast:
                    raise InputError(problem)
                failures.append((image_id, problem))
            else:
                done[image_id] = n
    finally:
        bar.close()
    if failures:
        raise BatchFailures(sorted(failures), len(ids))
    return done


# ----------------------------------------------------------------------------- agreement


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixel counts of every (pred label, truth label) pair of two H x W label images:
    int64 (max pred + 1) x (max truth + 1), row/column 0 = background."""
    pred = pred.astype(np.int64).ravel()
    truth = truth.astype(np.int64).ravel()
    n_pred, n_truth = int(pred.max(initial=0)), int(truth.max(initial=0))
    return np.bincount(pred * (n_truth + 1) + truth, minlength=(n_pred + 1) * (n_truth + 1)).reshape(n_pred + 1, n_truth + 1)


def matched_pairs(pred: np.ndarray, truth: np.ndarray, iou: float = 0.6) -> list[tuple[int, int]]:
    """One-to-one cell matching of two label images at IoU >= iou -> [(pred_id, truth_id), ...]."""
    return pairs_from_overlap(overlap_counts(pred, truth), iou)


def pairs_from_overlap(joint: np.ndarray, iou: float = 0.6) -> list[tuple[int, int]]:
    """`matched_pairs` from the labels' `overlap_counts` table."""
    if joint.shape[0] == 1 or joint.shape[1] == 1:
        return []
    area_pred = joint.sum(axis=1)
    area_truth = joint.sum(axis=0)
    inter = joint[1:, 1:].astype(np.float64)
    union = area_pred[1:, None] + area_truth[None, 1:] - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    # IoU >= 0.5 makes matches unique, so greedy by IoU is exact for thresholds >= 0.5.
    pairs: list[tuple[int, int]] = []
    used_p, used_t = set(), set()
    for flat in np.argsort(-ious, axis=None):
        p, t = divmod(int(flat), ious.shape[1])
        if ious[p, t] < iou:
            break
        if p in used_p or t in used_t:
            continue
        used_p.add(p)
        used_t.add(t)
        pairs.append((p + 1, t + 1))
    return pairs


def match_cells(pred: np.ndarray, truth: np.ndarray, iou: float = 0.6) -> tuple[int, int, int]:
    """One-to-one cell matching at IoU >= iou -> (true positives, predicted cells, true cells)."""
    n_pred = len(np.unique(pred[pred > 0]))
    n_truth = len(np.unique(truth[truth > 0]))
    return len(matched_pairs(pred, truth, iou)), n_pred, n_truth


def f1_score(tp: int, n_pred: int, n_truth: int) -> tuple[float, float, float]:
    """(precision, recall, F1); 1.0 each when both sides are empty."""
    if n_pred == 0 and n_truth == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_truth if n_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
