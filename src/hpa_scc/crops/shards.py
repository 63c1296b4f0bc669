"""Full training-set preparation: segment every image and write its model crops once, in shards.

    hpa-scc prepare --config configs/default.yaml --images train/ --labels train.csv --out prepared/ \
        [--workers N | --scheduler tcp://host:8786]
    hpa-scc train ... --prepared prepared/

`OUT/shard_00000.npz`, ... each hold `prepare.shard_images` images (in train.csv order):
- crops: uint8 M x S x S x C, the `crops.model_crops` of every cell (S = model.size);
- image: int32 (M,), the row's image as an index into ids; cell_ids: int32 (M,); boxes: int32 (M, 4);
- ids: the shard's images that were prepared; failed_ids, failed_errors: those that could not be.
A shard file is written atomically once all its images are done, so a killed run resumes by
skipping the shards that exist. `OUT/prepare.json` records the settings (a run with others
stops unless `--force`); `OUT/index.json` (written last) lists every shard with its images and
cell counts, which is what training reads (`train --prepared OUT`), without opening a PNG.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
from tqdm import tqdm

from hpa_scc.core.config import Config, config_to_dict
from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_path, atomic_write_text, claim_folder, remove_stale_temp_files, settings_hash
from hpa_scc.core.layout import INDEX_FILE, SETTINGS_FILE, shard_name
from hpa_scc.core.memory import RecentlyUsed
from hpa_scc.core.parallel import KeepGoing, run_tasks
from hpa_scc.crops.cut import CellCrops, model_crops
from hpa_scc.data.images import read_rgby
from hpa_scc.data.tables import read_labels
from hpa_scc.segment.cache import mask_settings
from hpa_scc.segment.segmenter import segment_image


def prepare_settings(cfg: Config) -> dict:
    """What decides a shard's content: segmentation, crop settings, model side and channels."""
    return {"segment": mask_settings(cfg.segment), "crops": config_to_dict(cfg.crops), "model_size": cfg.model.size,
            "channels": cfg.model.channels}


@dataclass(frozen=True)
class ShardTask:
    """One shard to write (picklable for worker processes and Dask)."""

    images: str
    ids: tuple[str, ...]
    path: str
    cfg: Config
    fail_fast: bool = False  # stop at the first bad image instead of listing it in the shard


def _image_crops(task: ShardTask, image_id: str) -> CellCrops:
    """Read, segment and crop one image of a shard."""
    rgby = read_rgby(task.images, image_id)
    cells = segment_image(rgby, task.cfg.segment).cells
    return model_crops(rgby, cells, task.cfg.crops, task.cfg.model.size, image_id, task.cfg.model.channels)


def write_shard(task: ShardTask) -> dict:
    """Segment and crop the shard's images, write the shard; returns its summary (see `shard_summary`).
    An image that cannot be read or segmented is listed in failed_ids with its error; the others are kept."""
    crops, image_rows, cell_ids, boxes, ids = [], [], [], [], []
    batch = KeepGoing(task.fail_fast)
    for image_id in task.ids:
        cut = batch.attempt(image_id, _image_crops, task, image_id)
        if cut is None:
            continue
        crops.append(cut.crops)
        image_rows.append(np.full(len(cut.cell_ids), len(ids), np.int32))
        cell_ids.append(cut.cell_ids)
        boxes.append(cut.boxes)
        ids.append(image_id)
    size, channels = task.cfg.model.size, task.cfg.model.channels
    arrays = {"crops": np.concatenate(crops) if crops else np.zeros((0, size, size, channels), np.uint8),
              "image": np.concatenate(image_rows) if image_rows else np.zeros(0, np.int32),
              "cell_ids": np.concatenate(cell_ids).astype(np.int32) if cell_ids else np.zeros(0, np.int32),
              "boxes": np.concatenate(boxes).astype(np.int32) if boxes else np.zeros((0, 4), np.int32),
              "ids": np.array(ids, dtype=str), "failed_ids": np.array([f[0] for f in batch.failures], dtype=str),
              "failed_errors": np.array([f[1] for f in batch.failures], dtype=str)}
    with atomic_path(Path(task.path)) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return shard_summary(Path(task.path))


def shard_summary(path: Path) -> dict:
    """{"file", "ids", "cells" (per image), "failed": [[ID, error], ...]} of a written shard
    (reads only its small arrays)."""
    with np.load(path) as data:
        ids = data["ids"].tolist()
        cells = np.bincount(data["image"], minlength=len(ids)).tolist()
        failed = [[i, e] for i, e in zip(data["failed_ids"].tolist(), data["failed_errors"].tolist())]
    return {"file": path.name, "ids": ids, "cells": cells, "failed": failed}


def _claim(out: Path, settings: dict, force: bool) -> None:
    """Record the settings of OUT; InputError if it holds shards made with others (unless force,
    which deletes them)."""
    if claim_folder(out / SETTINGS_FILE, settings, "shards prepared with other settings", force):
        for old in out.glob("shard_*.npz"):
            old.unlink()
        (out / INDEX_FILE).unlink(missing_ok=True)


def prepare_dataset(cfg: Config, images: str | Path, labels_csv: str | Path, out: str | Path,
                    workers: Optional[int] = None, scheduler: Optional[Any] = None, force: bool = False,
                    progress: bool = True, fail_fast: bool = False) -> dict:
    """Write every missing shard of the images in `labels_csv`, then OUT/index.json.

    A bad image is listed in its shard's failures (index["failed"]) and the rest go on;
    fail_fast stops at the first one instead.

    Returns the index: {"settings_key", "shards": [shard summaries], "images", "cells", "failed",
    "new_shards", "seconds"}.
    """
    start = time.perf_counter()
    images, out = Path(images), Path(out)
    ids = list(read_labels(labels_csv))
    out.mkdir(parents=True, exist_ok=True)
    settings = prepare_settings(cfg)
    _claim(out, settings, force)
    remove_stale_temp_files(out)
    per_shard = max(1, cfg.prepare.shard_images)
    plan = [tuple(ids[k:k + per_shard]) for k in range(0, len(ids), per_shard)]
    paths = [out / shard_name(k) for k in range(len(plan))]
    tasks = [ShardTask(str(images), part, str(path), cfg, fail_fast) for part, path in zip(plan, paths)
             if not path.is_file()]
    summaries = {path.name: shard_summary(path) for path in paths if path.is_file()}
    workers = cfg.segment.workers if workers is None else workers
    bar = tqdm(total=len(ids), initial=len(ids) - sum(len(t.ids) for t in tasks), desc="prepare", unit="img",
               disable=not progress)
    try:
        for summary in run_tasks(write_shard, tasks, workers, scheduler):
            summaries[summary["file"]] = summary
            bar.update(len(summary["ids"]) + len(summary["failed"]))
    finally:
        bar.close()
    shards = [summaries[path.name] for path in paths]
    index = {"settings_key": settings_hash(settings), "settings": settings, "shards": shards,
             "images": sum(len(s["ids"]) for s in shards), "cells": sum(sum(s["cells"]) for s in shards),
             "failed": [f for s in shards for f in s["failed"]]}
    atomic_write_text(out / INDEX_FILE, json.dumps(index))
    index["new_shards"] = len(tasks)
    index["seconds"] = time.perf_counter() - start
    return index


def read_index(prepared: str | Path, cfg: Config) -> dict:
    """OUT/index.json, checked against the settings `cfg` trains with (InputError if absent or other)."""
    prepared = Path(prepared)
    path = prepared / INDEX_FILE
    if not path.is_file():
        raise InputError(f"{prepared} is not a prepared set: {path} is missing (run hpa-scc prepare, to its end)")
    index = json.loads(path.read_text())
    expected = prepare_settings(cfg)
    if index.get("settings_key") != settings_hash(expected):
        recorded = index.get("settings", {})
        changed = sorted(k for k in expected if recorded.get(k) != expected[k])
        raise InputError(f"{prepared} was prepared with other settings ({', '.join(changed)}) than this training uses")
    return index


class ShardSource:
    """Example pixels from prepared shards, keeping `capacity` shards in memory (least recently used out).

    An example's `cell_index` is its row in the shard named by `shard_of[image_id]`.
    """

    def __init__(self, prepared: str | Path, index: dict, capacity: int = 2):
        self.prepared = Path(prepared)
        self.shard_of = {i: s["file"] for s in index["shards"] for i in s["ids"]}
        self._loaded = RecentlyUsed(capacity)
        self.capacity = self._loaded.capacity

    def group(self, example) -> str:
        return self.shard_of[example.image_id]

    def pixels(self, example) -> np.ndarray:
        name = self.shard_of[example.image_id]
        return self._loaded.get(name, lambda: self._read_crops(name))[example.cell_index]

    def _read_crops(self, name: str) -> np.ndarray:
        with np.load(self.prepared / name) as data:
            return data["crops"]


def prepared_cells(prepared: str | Path, index: dict) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(image ID, its rows in its shard, its cell IDs) of every prepared image, shard by shard
    (reads only the shards' small arrays)."""
    for shard in index["shards"]:
        with np.load(Path(prepared) / shard["file"]) as data:
            image, cell_ids = data["image"], data["cell_ids"]
        for k, image_id in enumerate(shard["ids"]):
            rows = np.flatnonzero(image == k)
            yield image_id, rows, cell_ids[rows]
