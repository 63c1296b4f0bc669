"""Agreement of two label images as pure array functions: overlaps, one-to-one cell matching,
precision / recall / F1 and matched IoU (like cellpose's metrics.py).
"""

from __future__ import annotations

import numpy as np

from hpa_scc.core.classes import COMPETITION_IOU


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixel counts of every (pred label, truth label) pair of two H x W label images:
    int64 (max pred + 1) x (max truth + 1), row/column 0 = background."""
    pred = pred.astype(np.int64).ravel()
    truth = truth.astype(np.int64).ravel()
    n_pred, n_truth = int(pred.max(initial=0)), int(truth.max(initial=0))
    return np.bincount(pred * (n_truth + 1) + truth, minlength=(n_pred + 1) * (n_truth + 1)).reshape(n_pred + 1, n_truth + 1)


def matched_pairs(pred: np.ndarray, truth: np.ndarray, iou: float = COMPETITION_IOU) -> list[tuple[int, int]]:
    """One-to-one cell matching of two label images at IoU >= iou -> [(pred_id, truth_id), ...]."""
    return pairs_from_overlap(overlap_counts(pred, truth), iou)


def pairs_from_overlap(joint: np.ndarray, iou: float = COMPETITION_IOU) -> list[tuple[int, int]]:
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


def match_cells(pred: np.ndarray, truth: np.ndarray, iou: float = COMPETITION_IOU) -> tuple[int, int, int]:
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


def cell_agreement(pred: np.ndarray, reference: np.ndarray, iou: float = COMPETITION_IOU) -> dict:
    """Agreement of two uint16 label images: tp, counts, precision, recall, F1, mean matched IoU,
    and the unmatched IDs on each side."""
    joint = overlap_counts(pred, reference)
    pairs = pairs_from_overlap(joint, iou)
    area_pred, area_ref = joint.sum(axis=1), joint.sum(axis=0)
    ious = [joint[p, t] / (area_pred[p] + area_ref[t] - joint[p, t]) for p, t in pairs]
    pred_ids = set(np.unique(pred[pred > 0]).tolist())
    ref_ids = set(np.unique(reference[reference > 0]).tolist())
    precision, recall, f1 = f1_score(len(pairs), len(pred_ids), len(ref_ids))
    return {"tp": len(pairs), "n_pred": len(pred_ids), "n_reference": len(ref_ids), "precision": precision,
            "recall": recall, "f1": f1, "mean_iou": float(np.mean(ious)) if ious else 0.0,
            "missed": sorted(ref_ids - {t for _, t in pairs}), "extra": sorted(pred_ids - {p for p, _ in pairs})}


def agreement_totals(per_image: dict[str, dict]) -> dict:
    """Pooled P/R/F1 over all cells, plus mean and minimum F1 over images."""
    tp = sum(r["tp"] for r in per_image.values())
    n_pred = sum(r["n_pred"] for r in per_image.values())
    n_ref = sum(r["n_reference"] for r in per_image.values())
    precision, recall, f1 = f1_score(tp, n_pred, n_ref)
    f1s = [r["f1"] for r in per_image.values()]
    return {"precision": precision, "recall": recall, "pooled_f1": f1, "mean_f1": float(np.mean(f1s)),
            "min_f1": float(np.min(f1s)), "mean_iou": float(np.mean([r["mean_iou"] for r in per_image.values()]))}
