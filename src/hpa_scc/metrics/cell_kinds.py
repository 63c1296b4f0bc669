"""Kinds of true cells and how well each kind is found: the error classes of a segmentation.

A true cell can be of several kinds: `edge` (cut by the image border), `mitotic` (a rounded
mitotic cell, named by the data's truth), `touching` (sharing a border with another cell),
`touching_nuclei` (its nucleus shares a border with another cell's nucleus: the clustered case;
named only when the true nuclei are given), `faint` (mean red + yellow signal under FAINT x the
image's median cell), `large` (area over LARGE x the image's median cell); every cell is also `all`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from hpa_scc.core.classes import COMPETITION_IOU
from hpa_scc.metrics.agreement import overlap_counts, pairs_from_overlap
from hpa_scc.segment.labels import object_contacts

KINDS = ("all", "edge", "mitotic", "touching", "touching_nuclei", "faint", "large")
FAINT = 0.5
LARGE = 2.0


def cell_kinds(truth: np.ndarray, rgby: np.ndarray, mitotic: set[int],
               nuclei: Optional[np.ndarray] = None) -> dict[int, set[str]]:
    """{true cell ID: its kinds} of a truth label image (H x W), its float RGBY image (H x W x 4) and,
    when given, its true nuclei (H x W, each with its cell's ID)."""
    truth = truth.astype(np.int64)
    ids = np.unique(truth[truth > 0])
    if not len(ids):
        return {}
    area = np.bincount(truth.ravel())
    signal = np.asarray(ndimage.mean(rgby[..., 0] + rgby[..., 3], truth, ids))
    edge_ids = set(np.unique(np.concatenate([truth[0], truth[-1], truth[:, 0], truth[:, -1]])).tolist())
    touching = set(truth[object_contacts(truth)].tolist())
    touching_nuclei = set(nuclei[object_contacts(nuclei)].tolist()) if nuclei is not None else set()
    median_area, median_signal = float(np.median(area[ids])), float(np.median(signal))
    kinds = {}
    for k, cell in enumerate(ids.tolist()):
        found = {"all"}
        found |= {"edge"} if cell in edge_ids else set()
        found |= {"mitotic"} if cell in mitotic else set()
        found |= {"touching"} if cell in touching else set()
        found |= {"touching_nuclei"} if cell in touching_nuclei else set()
        found |= {"faint"} if signal[k] < FAINT * median_signal else set()
        found |= {"large"} if area[cell] > LARGE * median_area else set()
        kinds[cell] = found
    return kinds


def found_by_kind(pred: np.ndarray, truth: np.ndarray, kinds: dict[int, set[str]],
                  iou: float = COMPETITION_IOU) -> dict[str, dict]:
    """Per kind: {"cells", "found" (matched one-to-one at IoU >= iou), "ious" (of the found ones)}."""
    joint = overlap_counts(pred, truth)
    area_pred, area_truth = joint.sum(axis=1), joint.sum(axis=0)
    matched = {t: joint[p, t] / (area_pred[p] + area_truth[t] - joint[p, t]) for p, t in pairs_from_overlap(joint, iou)}
    out = {kind: {"cells": 0, "found": 0, "ious": []} for kind in KINDS}
    for cell, its_kinds in kinds.items():
        for kind in its_kinds:
            out[kind]["cells"] += 1
            if cell in matched:
                out[kind]["found"] += 1
                out[kind]["ious"].append(float(matched[cell]))
    return out


def merge_kinds(parts: list[dict[str, dict]]) -> dict[str, dict]:
    """Pooled {kind: {"cells", "recall", "mean_iou"}} of several images' `found_by_kind`."""
    out = {}
    for kind in KINDS:
        cells = sum(p[kind]["cells"] for p in parts)
        found = sum(p[kind]["found"] for p in parts)
        ious = [v for p in parts for v in p[kind]["ious"]]
        out[kind] = {"cells": cells, "recall": found / cells if cells else float("nan"),
                     "mean_iou": float(np.mean(ious)) if ious else float("nan")}
    return out
