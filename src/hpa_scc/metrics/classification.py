"""Classification metrics of per-cell outputs: per-class AUC / F1, macro AUC, within-image spread."""

from __future__ import annotations

import numpy as np

from hpa_scc.core.classes import NUM_CLASSES


def per_class_metrics(targets: np.ndarray, probs: np.ndarray) -> list[dict]:
    """Per-class AUC (None where a class has one value only), F1 at 0.5 and support."""
    from sklearn.metrics import f1_score, roc_auc_score

    rows = []
    for c in range(NUM_CLASSES):
        y = targets[:, c]
        auc = float(roc_auc_score(y, probs[:, c])) if 0 < y.sum() < len(y) else None
        f1 = float(f1_score(y, probs[:, c] >= 0.5, zero_division=0)) if y.sum() else None
        rows.append({"class": c, "auc": auc, "f1": f1, "support": int(y.sum())})
    return rows


def macro_auc(targets: np.ndarray, probs: np.ndarray) -> float:
    """Mean ROC AUC over the classes that have both positives and negatives (NaN if none)."""
    aucs = [row["auc"] for row in per_class_metrics(targets, probs) if row["auc"] is not None]
    return float(np.mean(aucs)) if aucs else float("nan")


def cell_auc(probs: dict[tuple[str, int], np.ndarray], truth: dict[tuple[str, int], np.ndarray]) -> float:
    """Per-cell macro AUC over the classes present, on the cells that have a true match."""
    keys = [k for k in truth if k in probs]
    if not keys:
        return float("nan")
    return macro_auc(np.stack([truth[k] for k in keys]), np.stack([probs[k] for k in keys]))


COLLAPSE_SPREAD = 0.01  # below this within-image spread a model's per-cell outputs are called collapsed


def within_image_spread(probs: dict[tuple[str, int], np.ndarray]) -> float:
    """How much per-cell outputs vary inside an image: std over an image's cells of each class's
    probability, averaged over classes and over the images with >= 2 cells (0 for a broadcast)."""
    by_image: dict[str, list[np.ndarray]] = {}
    for (image_id, _), p in probs.items():
        by_image.setdefault(image_id, []).append(p)
    spreads = [np.stack(ps).std(axis=0).mean() for ps in by_image.values() if len(ps) >= 2]
    return float(np.mean(spreads)) if spreads else 0.0
