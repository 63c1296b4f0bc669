"""From raw probabilities to final scores: image-level scores, blends, cell rules, submission triples."""

from __future__ import annotations

from typing import Optional

import numpy as np

from hpa_scc.core.classes import NEGATIVE, NUM_CLASSES
from hpa_scc.core.config_learning import PredictConfig
from hpa_scc.core.errors import InputError
from hpa_scc.submission.rows import Prediction


def image_level(cell_probs: np.ndarray, whole_probs: Optional[np.ndarray], how: str) -> np.ndarray:
    """Image-level probabilities: (19,) from the whole-image pass or the mean / max over the cells,
    or N x 19 for `others_mean` (each cell: the mean of the other cells; a lone cell: its own)."""
    if how == "whole":
        if whole_probs is None:
            raise InputError("predict.image_score whole needs the whole-image pass")
        return whole_probs
    if len(cell_probs) == 0:
        return np.zeros(NUM_CLASSES, np.float32)
    if how == "others_mean":
        if len(cell_probs) == 1:
            return cell_probs.copy()
        return (cell_probs.sum(axis=0, keepdims=True) - cell_probs) / (len(cell_probs) - 1)
    return cell_probs.max(axis=0) if how == "cell_max" else cell_probs.mean(axis=0)


def derived_negative(others: np.ndarray, rule: str) -> np.ndarray:
    """Negative scores (N,) from the N x 18 probabilities of the other labels: `derived`
    prod(1 - p_c), `derived_max` 1 - max(p_c)."""
    if rule == "derived_max":
        return 1.0 - others.max(axis=1)
    return np.prod(1.0 - others, axis=1)


def blend(cell_probs: np.ndarray, image_probs: np.ndarray, cfg: PredictConfig) -> np.ndarray:
    """Final per-cell probabilities N x 19 from cell (N x 19) and image (19,) or N x 19 probabilities.

    linear: w * cell + (1 - w) * image; product: cell**w * image**(1 - w) (a weighted geometric
    mean); w = cfg.cell_weight, so w = 0 broadcasts the image prediction to every cell.
    Negative `derived`: the probability that the cell shows none of the 18 other labels, each
    taken as independent: prod(1 - p_c); `derived_max`: 1 - the highest of them.
    """
    w = cfg.cell_weight
    cell_probs = np.asarray(cell_probs, np.float64)
    image_probs = np.asarray(image_probs, np.float64)
    image_probs = image_probs[None] if image_probs.ndim == 1 else image_probs
    if cfg.blend == "product":
        out = np.power(cell_probs, w) * np.power(image_probs, 1.0 - w)
    else:
        out = w * cell_probs + (1.0 - w) * image_probs
    out = np.clip(out, 0.0, 1.0)
    if cfg.negative != "predicted" and len(out):
        out[:, NEGATIVE] = derived_negative(np.delete(out, NEGATIVE, axis=1), cfg.negative)
    return out


def cell_rules(final: np.ndarray, record: dict, cfg: PredictConfig) -> np.ndarray:
    """Down-weight the final scores (N x 19) of cells touching the image edge (`border_weight`)
    and of faint cells (`faint_weight`: mean blue below `faint_fraction` x the image's median cell)."""
    out = np.array(final, np.float64, copy=True)
    if not len(out):
        return out
    if cfg.border_weight < 1.0:
        boxes = np.asarray(record["boxes"]).reshape(-1, 4)
        edge = ((boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 2] >= record["height"]) | (boxes[:, 3] >= record["width"]))
        out[edge] *= cfg.border_weight
    if cfg.faint_weight < 1.0 and record.get("blue") is not None:
        blue = np.asarray(record["blue"], np.float64)
        out[blue < cfg.faint_fraction * np.median(blue)] *= cfg.faint_weight
    return out


def predictions_of(record: dict, cfg: PredictConfig) -> tuple[list, np.ndarray]:
    """(submission Predictions, blended N x 19) of one journal record."""
    cell_probs = np.asarray(record["cell"], np.float32).reshape(-1, NUM_CLASSES)
    whole = None if record["image"] is None else np.asarray(record["image"], np.float32)
    final = cell_rules(blend(cell_probs, image_level(cell_probs, whole, cfg.image_score), cfg), record, cfg)
    predictions = [Prediction(label, float(final[k, label]), token)
                   for k, token in enumerate(record["tokens"]) for label in range(NUM_CLASSES)
                   if final[k, label] >= cfg.min_confidence]
    return predictions, final
