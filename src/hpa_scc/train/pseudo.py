"""Pseudo-labels: relabel cells from a model's scores, in sample or out of fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpa_scc.core.classes import NEGATIVE, NUM_CLASSES
from hpa_scc.core.config import Config, replace
from hpa_scc.core.layout import CROP_CACHE_DIR, MODEL_FILE
from hpa_scc.model.classifier import load_classifier
from hpa_scc.train.datasets import predict_examples
from hpa_scc.train.examples import Example, make_examples
from hpa_scc.train.sources import CropSource


def pseudo_labels(examples: list[Example], scores: np.ndarray, keep: float, minimum: float) -> list[Example]:
    """Relabel cells: keep an image label on a cell where its score >= keep x the image's best
    score for that label and >= minimum; a cell that keeps none becomes Negative."""
    best: dict[tuple[str, int], float] = {}
    for ex, s in zip(examples, scores):
        for c in np.flatnonzero(ex.target):
            best[(ex.image_id, c)] = max(best.get((ex.image_id, c), 0.0), float(s[c]))
    out = []
    for ex, s in zip(examples, scores):
        target = np.zeros(NUM_CLASSES, np.float32)
        for c in np.flatnonzero(ex.target):
            if c != NEGATIVE and s[c] >= minimum and s[c] >= keep * best[(ex.image_id, c)]:
                target[c] = 1.0
        if not target.any():
            target[NEGATIVE] = 1.0
        out.append(Example(ex.image_id, ex.cell_index, target, ex.cell_id))
    return out


def with_train(cfg: Config, **changes) -> Config:
    return replace(cfg, train=replace(cfg.train, **changes))


def out_of_fold_labels(cfg: Config, images: Path, labels: dict[str, tuple[int, ...]], masks: Path, fold_run: Path,
                       held_out: list[str]) -> dict[tuple[str, int], tuple[int, ...]]:
    """Relabel the held-out images' cells with the fold model in `fold_run`: each image label is
    kept on a cell where the model's score passes `pseudo_labels`; returns {(ID, cell_id): labels}."""
    cells_cfg = with_train(cfg, mode="cells")
    cache = masks / CROP_CACHE_DIR
    examples = make_examples(cells_cfg, images, {i: labels[i] for i in held_out}, masks, cache=cache)
    source = CropSource(cells_cfg, images, masks, cache)
    scores = predict_examples(load_classifier(fold_run / MODEL_FILE), examples, source, cells_cfg)
    relabelled = pseudo_labels(examples, scores, cfg.train.pseudo_keep, cfg.train.pseudo_min)
    return {(e.image_id, e.cell_id): tuple(np.flatnonzero(e.target).tolist()) for e in relabelled}
