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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from pycocotools import mask as coco_mask

from .classes import CLASSES, NUM_CLASSES
from .errors import InputError
from .io import CELL_TABLE_SUFFIX, atomic_write_text, file_sha256
from .submission import SubmissionRow, read_submission


@dataclass
class ScoreResult:
    """mAP and per-class figures."""

    map: float
    ap: list[Optional[float]]  # per class; None where the class has no ground truth
    n_truth: list[int]
    n_detections: list[int]  # detections that took part (verified, or all with strict)
    iou: float = 0.6
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
    from .encode import token_to_rle

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
    submission: dict[str, SubmissionRow], solution: dict[str, SubmissionRow], iou: float = 0.6, strict: bool = False
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


def score_files(submission: str | Path, solution: str | Path, iou: float = 0.6, strict: bool = False) -> ScoreResult:
    """Read and score a submission CSV against a solution CSV."""
    return score_rows(read_submission(submission), read_submission(solution), iou, strict)


def plot_per_class(result: ScoreResult, path: str | Path, title: str = "") -> Path:
    """Bar chart of per-class AP (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    values = [a if a is not None else 0.0 for a in result.ap]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    colours = ["#4c72b0" if a is not None else "#cccccc" for a in result.ap]
    ax.bar(range(NUM_CLASSES), values, color=colours)
    ax.set_xticks(range(NUM_CLASSES), [c.key for c in CLASSES], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP")
    ax.set_title(title or f"per-class AP (mAP {result.map:.4f}, IoU {result.iou})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------- leaderboard




@dataclass
class LeaderboardEntry:
    name: str
    map: Optional[float]
    best_class: str = ""
    worst_class: str = ""
    date: str = ""
    error: str = ""


def leaderboard(folder: str | Path, solution: str | Path, iou: float = 0.6, strict: bool = False,
                cache_name: str = ".leaderboard_cache.json") -> list[LeaderboardEntry]:
    """Score every *.csv in `folder` (except the solution and per-cell tables *.cells.csv);
    cached by file hashes. Best first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"leaderboard folder {folder} does not exist")
    solution = Path(solution)
    cache_path = folder / cache_name
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except json.JSONDecodeError:
        cache = {}
    solution_key = file_sha256(solution)
    solution_rows = None
    entries = []
    for path in sorted(folder.glob("*.csv")):
        if path.resolve() == solution.resolve() or path.name.endswith(CELL_TABLE_SUFFIX):
            continue
        key = f"{file_sha256(path)}:{solution_key}:{iou}:{strict}"
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        if key not in cache:
            if solution_rows is None:
                solution_rows = read_submission(solution)
            try:
                result = score_rows(read_submission(path), solution_rows, iou, strict)
                scored = [(a, c) for c, a in enumerate(result.ap) if a is not None]
                best = max(scored)
                worst = min(scored)
                cache[key] = asdict(LeaderboardEntry(
                    path.name, result.map, f"{CLASSES[best[1]].key} {best[0]:.3f}", f"{CLASSES[worst[1]].key} {worst[0]:.3f}"))
            except InputError as exc:
                cache[key] = asdict(LeaderboardEntry(path.name, None, error=str(exc)))
        entry = LeaderboardEntry(**{**cache[key], "name": path.name, "date": date})
        entries.append(entry)
    atomic_write_text(cache_path, json.dumps(cache, indent=1))
    entries.sort(key=lambda e: (e.map is None, -(e.map or 0.0), e.name))
    return entries


def format_leaderboard(entries: list[LeaderboardEntry]) -> str:
    lines = [f"{'#':>3}  {'submission':<36} {'mAP':>8}  {'best class':<24} {'worst class':<24} date"]
    for rank, e in enumerate(entries, start=1):
        value = f"{e.map:.4f}" if e.map is not None else "error"
        lines.append(f"{rank:>3}  {e.name:<36} {value:>8}  {e.best_class:<24} {e.worst_class:<24} {e.date}")
        if e.error:
            lines.append(f"     {e.error}")
    return "\n".join(lines)


def result_to_json(result: ScoreResult) -> str:
    return json.dumps(asdict(result), indent=1)
