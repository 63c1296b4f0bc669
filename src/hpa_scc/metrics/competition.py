"""The HPA single-cell classification metric and a local leaderboard.

    hpa-scc score submissions/demo.csv --solution data/demo/solution.csv --per-class

Rules (Open Images Challenge instance-segmentation evaluation, as the organisers ran it):
- every (label, confidence, mask) triple of the submission is one detection; every
  (cell, label) triple of the solution is one ground-truth instance;
- an image's *verified* classes are the labels of its ground-truth instances; detections of a
  class not verified in that image are ignored (with `strict=True` they are false positives);
- per class, detections are ranked by confidence over all images (ties keep file order);
  within its image each detection takes the ground-truth instance of its class with the
  highest mask IoU: a true positive if IoU >= `iou` (0.6) and that instance is not matched
  yet, otherwise a false positive;
- AP = area under the precision envelope over recall (all-point, VOC style);
- mAP = mean AP over the classes with at least one ground-truth instance; Negative (18)
  is a class like any other; a class with ground truth but no detection has AP 0.
IoUs are computed on RLEs with pycocotools, once per (image, unique detection mask, truth mask).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from pycocotools import mask as coco_mask

from hpa_scc.core.classes import CLASSES, COMPETITION_IOU, NUM_CLASSES
from hpa_scc.core.errors import InputError
from hpa_scc.submission.encode import token_to_rle
from hpa_scc.submission.rows import SubmissionRow, read_submission


@dataclass
class ScoreResult:
    """mAP and per-class figures."""

    map: float
    ap: list[Optional[float]]  # per class; None where the class has no ground truth
    n_truth: list[int]
    n_detections: list[int]  # detections that took part (verified, or all with strict)
    iou: float = COMPETITION_IOU
    strict: bool = False
    images: int = 0  # images of the solution scored

    def summary(self) -> str:
        """What was read: images, detections that took part, truth instances."""
        return (f"scored {self.images} image(s): {sum(self.n_detections)} detections against "
                f"{sum(self.n_truth)} truth instances")

    def table(self) -> str:
        lines = [f"{'class':>5}  {'name':<42} {'AP':>8} {'truth':>7} {'dets':>8}"]
        for c in range(NUM_CLASSES):
            ap = "-" if self.ap[c] is None else f"{self.ap[c]:.4f}"
            lines.append(f"{c:>5}  {CLASSES[c].name:<42} {ap:>8} {self.n_truth[c]:>7} {self.n_detections[c]:>8}")
        return "\n".join(lines)


def average_precision(tp: np.ndarray, scores: np.ndarray, n_truth: int) -> float:
    """AP of detections with true-positive flags `tp` and `scores`, given `n_truth` instances."""
    if n_truth == 0:
        raise ValueError("AP is undefined without ground truth")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(np.float64)
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum(1.0 - tp)
    precision = cum_tp / (cum_tp + cum_fp)
    recall = cum_tp / n_truth
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _rles(tokens: list[str], height: int, width: int) -> list[dict]:
    return [token_to_rle(t, height, width) for t in tokens]


def match_image(sub: SubmissionRow, truth: SubmissionRow, iou_threshold: float, strict: bool):
    """Per-class (scores, tp flags) of one image's detections, and truth counts per class.

    Returns ({class: (scores, tp)}, counts of truth instances per class (19,)).
    """
    height, width = truth.height, truth.width
    truth_tokens = sorted({p.token for p in truth.predictions})
    det_tokens = sorted({p.token for p in sub.predictions})
    truth_index = {t: i for i, t in enumerate(truth_tokens)}
    det_index = {t: i for i, t in enumerate(det_tokens)}
    n_truth = np.zeros(NUM_CLASSES, int)
    truth_by_class: dict[int, list[int]] = {}
    for p in truth.predictions:
        truth_by_class.setdefault(p.label, []).append(truth_index[p.token])
        n_truth[p.label] += 1
    ious = None
    if det_tokens and truth_tokens:
        ious = np.asarray(
            coco_mask.iou(_rles(det_tokens, height, width), _rles(truth_tokens, height, width), [0] * len(truth_tokens))
        ).reshape(len(det_tokens), len(truth_tokens))
    out: dict[int, tuple[list[float], list[bool]]] = {}
    dets_by_class: dict[int, list[tuple[float, int]]] = {}
    for p in sub.predictions:
        dets_by_class.setdefault(p.label, []).append((p.confidence, det_index[p.token]))
    for label, dets in dets_by_class.items():
        gts = truth_by_class.get(label)
        if not gts:
            if strict:
                out[label] = ([d[0] for d in dets], [False] * len(dets))
            continue
        order = sorted(range(len(dets)), key=lambda i: -dets[i][0])
        matched = np.zeros(len(gts), bool)
        tp = [False] * len(dets)
        sub_iou = ious[:, gts] if ious is not None else np.zeros((len(det_tokens), len(gts)))
        for i in order:
            row = sub_iou[dets[i][1]]
            best = int(np.argmax(row))
            if row[best] >= iou_threshold and not matched[best]:
                matched[best] = True
                tp[i] = True
        out[label] = ([d[0] for d in dets], tp)
    return out, n_truth


def score_rows(
    submission: dict[str, SubmissionRow], solution: dict[str, SubmissionRow], iou: float = COMPETITION_IOU, strict: bool = False
) -> ScoreResult:
    """Score parsed submission rows against parsed solution rows (see module docstring)."""
    missing = [i for i in solution if i not in submission]
    if missing:
        raise InputError(f"submission lacks {len(missing)} image(s) of the solution, e.g. {missing[0]}")
    for image_id, truth in solution.items():
        sub = submission[image_id]
        if (sub.width, sub.height) != (truth.width, truth.height):
            raise InputError(
                f"image {image_id}: submission size {sub.width}x{sub.height} differs from the solution's {truth.width}x{truth.height}"
            )
    scores: list[list[float]] = [[] for _ in range(NUM_CLASSES)]
    flags: list[list[bool]] = [[] for _ in range(NUM_CLASSES)]
    n_truth = np.zeros(NUM_CLASSES, int)
    for image_id, truth in solution.items():
        per_class, counts = match_image(submission[image_id], truth, iou, strict)
        n_truth += counts
        for label, (s, t) in per_class.items():
            scores[label].extend(s)
            flags[label].extend(t)
    ap: list[Optional[float]] = []
    for c in range(NUM_CLASSES):
        if n_truth[c] == 0:
            ap.append(None)
        else:
            ap.append(average_precision(np.array(flags[c], bool), np.array(scores[c], float), int(n_truth[c])))
    valid = [a for a in ap if a is not None]
    if not valid:
        raise InputError("the solution holds no ground-truth instance")
    return ScoreResult(float(np.mean(valid)), ap, n_truth.tolist(), [len(s) for s in scores], iou, strict, len(solution))


def score_files(submission: str | Path, solution: str | Path, iou: float = COMPETITION_IOU, strict: bool = False) -> ScoreResult:
    """Read and score a submission CSV against a solution CSV."""
    return score_rows(read_submission(submission), read_submission(solution), iou, strict)


def result_to_json(result: ScoreResult) -> str:
    return json.dumps(asdict(result), indent=1)
