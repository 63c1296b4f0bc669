"""The mask cache: `MASKDIR/{ID}_cells.png`, `{ID}_nuclei.png` (uint16), and `segment_folder`.

    hpa-scc segment --images data/demo/test --out data/demo/masks --workers 2
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from tqdm import tqdm

from hpa_scc.core.config import config_to_dict
from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import InputError, describe
from hpa_scc.core.files import claim_folder, remove_stale_temp_files
from hpa_scc.core.layout import MASK_MANIFEST, mask_paths
from hpa_scc.core.parallel import WORKER_DIED, KeepGoing, run_tasks
from hpa_scc.data.images import list_image_ids, read_label_png, read_rgby, validate_id, write_png
from hpa_scc.segment.labels import Segmentation
from hpa_scc.segment.segmenter import segment_image


def mask_settings(cfg: SegmentConfig) -> dict:
    """The settings that change masks (not the worker count)."""
    return {k: v for k, v in config_to_dict(cfg).items() if k != "workers"}


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


def _worker_died(task: tuple) -> tuple[str, None, str]:
    """The result of a task whose worker process died twice: that image's failure."""
    return task[1], None, f"image {task[1]}: {WORKER_DIED}"


def record_mask_settings(out: Path, cfg: SegmentConfig, force: bool = False) -> None:
    """Record the settings of a mask folder; InputError if it holds masks made with others (unless force)."""
    claim_folder(Path(out) / MASK_MANIFEST, mask_settings(cfg), "masks made with other segmentation settings", force)


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
    images, out = Path(images), Path(out)
    ids = list(ids) if ids is not None else list_image_ids(images)
    batch = KeepGoing(fail_fast)
    valid = [i for i in ids if batch.attempt(i, validate_id, i) is not None]  # a bad name fails alone
    out.mkdir(parents=True, exist_ok=True)
    record_mask_settings(out, cfg, force)
    remove_stale_temp_files(out)
    todo = [i for i in valid if force or not mask_paths(out, i)[0].is_file()]
    tasks = [(str(images), i, str(out), cfg) for i in todo]
    workers = cfg.workers if workers is None else workers
    done: dict[str, int] = {}
    bar = tqdm(total=len(tasks), desc="segment", unit="img", disable=not progress)
    try:
        for image_id, n, problem in run_tasks(_segment_task, tasks, workers, scheduler, on_death=_worker_died):
            bar.update()
            if n is None:
                batch.add(image_id, problem)
            else:
                done[image_id] = n
    finally:
        bar.close()
    batch.raise_failures(len(ids))
    return done
