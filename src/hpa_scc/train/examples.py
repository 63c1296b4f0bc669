"""Training examples (one per cell crop or whole image, with its target) and splits by image."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from hpa_scc.core.classes import NUM_CLASSES, to_multi_hot
from hpa_scc.core.config import Config
from hpa_scc.core.errors import InputError
from hpa_scc.core.parallel import KeepGoing
from hpa_scc.crops.cache import load_or_make_crops
from hpa_scc.crops.shards import prepared_cells


@dataclass
class Example:
    """One training item: a cell crop (cell_index >= 0 into the image's crops; cell_id its mask
    label) or a whole image (-1), and its target (19,)."""

    image_id: str
    cell_index: int
    target: np.ndarray
    cell_id: int = -1


def _cell_examples(mode: str, image_id: str, image_labels: tuple[int, ...], rows, cell_ids,
                   cell_labels: Optional[dict]) -> list[Example]:
    """One Example per cell: row k of the image's crops (or of its shard), target per `mode`."""
    examples = []
    for row, cell_id in zip(rows, cell_ids):
        cell_id = int(cell_id)
        if mode == "truth":
            if (image_id, cell_id) not in cell_labels:
                raise InputError(f"cell labels lack image {image_id} cell {cell_id}")
            target = to_multi_hot(cell_labels[(image_id, cell_id)])
        else:
            target = to_multi_hot(image_labels)
        examples.append(Example(image_id, int(row), target, cell_id))
    return examples


def _check_mode(mode: str, cell_labels: Optional[dict]) -> None:
    if mode == "truth" and not cell_labels:
        raise InputError("train.mode truth needs a per-cell label table (--cell-labels ID,cell_id,Label)")


def make_examples(cfg: Config, images: Path, labels: dict[str, tuple[int, ...]], masks: Path,
                  cell_labels: Optional[dict] = None, cache: Optional[Path] = None,
                  batch: Optional[KeepGoing] = None) -> list[Example]:
    """Examples of every image in `labels` for the configured mode (crops cached under `cache`).

    batch: notes each image whose crops cannot be made, which is skipped; None = raise at the first one.
    """
    batch = KeepGoing(fail_fast=True) if batch is None else batch
    mode = cfg.train.mode
    _check_mode(mode, cell_labels)
    examples: list[Example] = []
    for image_id, image_labels in tqdm(labels.items(), desc="crops", unit="img", leave=False):
        if mode == "image":
            examples.append(Example(image_id, -1, to_multi_hot(image_labels)))
            continue
        crops = batch.attempt(image_id, load_or_make_crops, images, masks, image_id, cfg.crops, cfg.model.size, cache,
                              cfg.model.channels)
        if crops is None:
            continue
        n = min(len(crops.cell_ids), cfg.train.max_cells_per_image)
        examples += _cell_examples(mode, image_id, image_labels, range(n), crops.cell_ids[:n], cell_labels)
    if not examples:
        batch.raise_failures(len(labels))  # every image failed: name each one and its reason
        raise InputError(f"no training examples: no cells found for the {len(labels)} images in {images} "
                         f"(masks in {masks})")
    return examples


def prepared_examples(cfg: Config, prepared: Path, index: dict, labels: dict[str, tuple[int, ...]],
                      cell_labels: Optional[dict] = None) -> list[Example]:
    """Examples of the images in `labels` from a prepared set (`hpa-scc prepare`); cell_index is the
    crop's row in its shard. Images the preparation could not read are left out, with a warning."""
    mode = cfg.train.mode
    if mode == "image":
        raise InputError("train --prepared holds cell crops; train.mode image reads whole images (drop --prepared)")
    _check_mode(mode, cell_labels)
    examples: list[Example] = []
    seen = set()
    for image_id, rows, cell_ids in prepared_cells(prepared, index):
        if image_id in labels:
            n = min(len(rows), cfg.train.max_cells_per_image)
            examples += _cell_examples(mode, image_id, labels[image_id], rows[:n], cell_ids[:n], cell_labels)
            seen.add(image_id)
    missing = [i for i in labels if i not in seen]
    if missing:
        warnings.warn(f"{len(missing)} image(s) of the labels are not in {prepared} (failed or not prepared), "
                      f"e.g. {missing[0]}; training without them")
    if not examples:
        raise InputError(f"no training examples: no cells of the labelled images in {prepared}")
    return examples


def split_by_image(labels: dict[str, tuple[int, ...]], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Validation split by image, stratified on each image's rarest label where possible."""
    ids = sorted(labels)
    if fraction <= 0 or len(ids) < 4:
        return ids, []
    counts = np.bincount([c for labs in labels.values() for c in labs], minlength=NUM_CLASSES)
    strata = [min(labels[i], key=lambda c: counts[c]) for i in ids]
    n_val = max(1, int(round(len(ids) * fraction)))
    try:
        train, val = train_test_split(ids, test_size=n_val, random_state=seed, stratify=strata)
    except ValueError:  # a stratum with one member
        train, val = train_test_split(ids, test_size=n_val, random_state=seed)
    return sorted(train), sorted(val)


def fold_split(ids: list[str], folds: int, seed: int) -> list[list[str]]:
    """Image IDs dealt into `folds` disjoint folds of near-equal size (seeded shuffle)."""
    order = np.random.default_rng(seed).permutation(sorted(ids))
    return [sorted(part.tolist()) for part in np.array_split(order, folds)]
