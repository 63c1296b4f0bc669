"""What every figure stands next to: the floor submission, and the truth moved onto the project's cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpa_scc.core.classes import NEGATIVE, NUM_CLASSES, to_multi_hot
from hpa_scc.core.layout import CELL_LABELS_FILE, truth_paths
from hpa_scc.data.images import read_label_png
from hpa_scc.data.tables import read_cell_labels, read_sample_submission, write_cell_labels
from hpa_scc.metrics.agreement import matched_pairs, overlap_counts
from hpa_scc.segment.cache import read_masks
from hpa_scc.submission.encode import encode_label_image
from hpa_scc.submission.rows import Prediction, write_submission


def transfer_cell_labels(pred: np.ndarray, truth: np.ndarray, truth_labels: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Labels of each predicted cell: those of the true cell it overlaps most (Negative if none).

    pred, truth: label images H x W (0 = background); truth_labels: true cell ID -> classes.
    """
    joint = overlap_counts(pred, truth)
    out = {}
    for cell in range(1, joint.shape[0]):
        if joint[cell].sum() == 0:
            continue
        best = int(np.argmax(joint[cell, 1:])) + 1 if joint.shape[1] > 1 else 0
        out[cell] = truth_labels.get(best, (NEGATIVE,)) if best and joint[cell, best] > 0 else (NEGATIVE,)
    return out


def true_labels_by_image(data: Path) -> dict[str, dict[int, tuple[int, ...]]]:
    by_image: dict[str, dict[int, tuple[int, ...]]] = {}
    for (image_id, cell_id), labels in read_cell_labels(data / CELL_LABELS_FILE).items():
        by_image.setdefault(image_id, {})[cell_id] = labels
    return by_image


def write_transferred_labels(data: Path, masks: Path, ids: list[str], out: Path) -> None:
    """ID,cell_id,Label for the project's cells of `ids`, labels moved over from the truth."""
    truth = true_labels_by_image(data)
    table = {}
    for image_id in ids:
        cells = read_masks(masks, image_id).cells
        true_cells = read_label_png(truth_paths(data, image_id)[0])
        for cell_id, labels in sorted(transfer_cell_labels(cells, true_cells, truth.get(image_id, {})).items()):
            table[(image_id, cell_id)] = labels
    write_cell_labels(out, table)


def per_cell_truth(data: Path, masks: Path, ids: list[str], iou: float) -> dict[tuple[str, int], np.ndarray]:
    """{(ID, project cell ID): true multi-hot (19,)} for the project's cells matched to a true cell."""
    truth = true_labels_by_image(data)
    out = {}
    for image_id in ids:
        true_cells = read_label_png(truth_paths(data, image_id)[0])
        for pred_id, truth_id in matched_pairs(read_masks(masks, image_id).cells, true_cells, iou):
            out[(image_id, pred_id)] = to_multi_hot(truth[image_id][truth_id])
    return out


def write_floor(sample: Path, masks: Path, out: Path, confidence: float = 0.5) -> Path:
    """The floor submission: every cell of the project's masks gets every label at one confidence."""
    rows = read_sample_submission(sample)
    predictions = {}
    for row in rows:
        tokens = encode_label_image(read_masks(masks, row.image_id).cells)
        predictions[row.image_id] = [Prediction(c, confidence, t) for t in tokens.values() for c in range(NUM_CLASSES)]
    write_submission(out, [(r.image_id, r.width, r.height) for r in rows], predictions)
    return out
