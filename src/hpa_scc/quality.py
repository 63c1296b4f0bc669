"""`hpa-scc bench quality`: does the classifier learn per-cell patterns? Figures beside the floor.

    hpa-scc bench quality --config configs/cpu.yaml [--seed 0] [--train-images N] [--test-images N]

Generates a seeded synthetic set with cell truth, segments it with the project's segmenter,
trains an `image`, a `cells` (weak, inherited labels) and a `truth` (true cell labels moved onto
the project's cells) model with the given recipe, predicts the test images and prints one table:

    floor         every cell, every label, one constant confidence (no model) on the project's masks
    broadcast     the image model's whole-image prediction given to every cell (cell weight 0)
    weak          the cells-mode model's per-cell output (cell weight 1)
    weak+image    weak blended with the image model's whole-image pass (0.7 cell + 0.3 image)
    weak+others   weak, 0.7 x cell + 0.3 x the mean of the image's other cells (4th place's rule)
    weak+rules    weak+others, cells at the image edge and faint cells x 0.8
    truth         the truth-mode model's per-cell output (an upper bound for weak labels)

`--methods mil oof` add rows (and training time): `mil` (multiple-instance training, train.mil_*)
and `oof` (out-of-fold pseudo-labels: train.pseudo_folds folds, train.pseudo_rounds >= 1), each
alone and with the `+others` rule.

with mAP (competition metric, IoU 0.6), per-class AP and the per-cell macro AUC against the
true labels of the test cells the segmentation found (matched one-to-one at IoU >= 0.6).
Nothing is chosen by looking at the test truth. Writes BENCH/quality.json and quality.png.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .classes import NEGATIVE, NUM_CLASSES
from .config import Config, SynthConfig, replace


@dataclass(frozen=True)
class QualitySettings:
    """The generated set of `bench quality` (train images are split into train/validation by the recipe)."""

    seed: int = 0
    n_train: int = 280
    n_test: int = 40
    sizes: tuple[int, ...] = (384,)
    class_balance: float = 1.0  # every class 0-17 equally often, so each has cells to learn from
    image_size: int = 128  # input side of the image model (a whole image holds many cells)
    image_epochs: int = 20  # one epoch of the image model is one pass over the images, not the cells
    methods: tuple[str, ...] = ()  # extra weak-label methods: mil, oof

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(EXTRA_METHODS)
        if unknown:
            raise ValueError(f"bench quality: unknown methods {sorted(unknown)} (choose from {', '.join(EXTRA_METHODS)})")


EXTRA_METHODS = ("mil", "oof")
OTHERS_RULE = dict(cell_weight=0.7, image_score="others_mean", blend="linear")  # 4th place: 0.7 cell + 0.3 others


def _synth_config(settings: QualitySettings, workers: int) -> SynthConfig:
    return SynthConfig(n_train=settings.n_train, n_test=settings.n_test, sizes=settings.sizes, seed=settings.seed,
                       class_balance=settings.class_balance, workers=workers)


def transfer_cell_labels(pred: np.ndarray, truth: np.ndarray, truth_labels: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Labels of each predicted cell: those of the true cell it overlaps most (Negative if none).

    pred, truth: label images H x W (0 = background); truth_labels: true cell ID -> classes.
    """
    from .segment import overlap_counts

    joint = overlap_counts(pred, truth)
    out = {}
    for cell in range(1, joint.shape[0]):
        if joint[cell].sum() == 0:
            continue
        best = int(np.argmax(joint[cell, 1:])) + 1 if joint.shape[1] > 1 else 0
        out[cell] = truth_labels.get(best, (NEGATIVE,)) if best and joint[cell, best] > 0 else (NEGATIVE,)
    return out


def _true_labels_by_image(data: Path) -> dict[str, dict[int, tuple[int, ...]]]:
    from .io import read_cell_labels

    by_image: dict[str, dict[int, tuple[int, ...]]] = {}
    for (image_id, cell_id), labels in read_cell_labels(data / "cell_labels.csv").items():
        by_image.setdefault(image_id, {})[cell_id] = labels
    return by_image


def write_transferred_labels(data: Path, masks: Path, ids: list[str], out: Path) -> None:
    """ID,cell_id,Label for the project's cells of `ids`, labels moved over from the truth."""
    from .io import read_label_png, write_cell_labels
    from .segment import read_masks

    truth = _true_labels_by_image(data)
    table = {}
    for image_id in ids:
        cells = read_masks(masks, image_id).cells
        true_cells = read_label_png(data / "truth" / f"{image_id}_cells.png")
        for cell_id, labels in sorted(transfer_cell_labels(cells, true_cells, truth.get(image_id, {})).items()):
            table[(image_id, cell_id)] = labels
    write_cell_labels(out, table)


def per_cell_truth(data: Path, masks: Path, ids: list[str], iou: float) -> dict[tuple[str, int], np.ndarray]:
    """{(ID, project cell ID): true multi-hot (19,)} for the project's cells matched to a true cell."""
    from .classes import to_multi_hot
    from .io import read_label_png
    from .segment import matched_pairs, read_masks

    truth = _true_labels_by_image(data)
    out = {}
    for image_id in ids:
        true_cells = read_label_png(data / "truth" / f"{image_id}_cells.png")
        for pred_id, truth_id in matched_pairs(read_masks(masks, image_id).cells, true_cells, iou):
            out[(image_id, pred_id)] = to_multi_hot(truth[image_id][truth_id])
    return out


def read_cells_table(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """{(ID, cell_id): final probabilities (19,)} from a `NAME.cells.csv` that predict writes."""
    import csv

    with open(path) as handle:
        return {(row["ID"], int(row["cell_id"])): np.array([float(row[f"p{c}"]) for c in range(NUM_CLASSES)])
                for row in csv.DictReader(handle)}


def cell_auc(probs: dict[tuple[str, int], np.ndarray], truth: dict[tuple[str, int], np.ndarray]) -> float:
    """Per-cell macro AUC over the classes present, on the cells that have a true match."""
    from .train import macro_auc

    keys = [k for k in truth if k in probs]
    if not keys:
        return float("nan")
    return macro_auc(np.stack([truth[k] for k in keys]), np.stack([probs[k] for k in keys]))


def write_floor(sample: Path, masks: Path, out: Path, confidence: float = 0.5) -> Path:
    """The floor submission: every cell of the project's masks gets every label at one confidence."""
    from .encode import encode_label_image
    from .io import read_sample_submission
    from .segment import read_masks
    from .submission import Prediction, write_submission

    rows = read_sample_submission(sample)
    predictions = {}
    for row in rows:
        tokens = encode_label_image(read_masks(masks, row.image_id).cells)
        predictions[row.image_id] = [Prediction(c, confidence, t) for t in tokens.values() for c in range(NUM_CLASSES)]
    write_submission(out, [(r.image_id, r.width, r.height) for r in rows], predictions)
    return out


def bench_train_config(cfg: Config, settings: QualitySettings, mode: str) -> Config:
    """The recipe `cfg` set up to train the bench's `mode` model: image, cells, truth, mil or oof
    (inherited labels, then out-of-fold relabelling: at least 1 round of 2 folds)."""
    if mode == "oof":
        train_cfg = replace(cfg.train, mode="cells", pseudo_rounds=max(1, cfg.train.pseudo_rounds),
                            pseudo_folds=max(2, cfg.train.pseudo_folds))
    else:
        train_cfg = replace(cfg.train, mode=mode, pseudo_rounds=0, pseudo_folds=0)
    model_cfg = cfg.model
    if mode == "image":
        train_cfg = replace(train_cfg, epochs=settings.image_epochs)
        model_cfg = replace(model_cfg, size=settings.image_size)
    return replace(cfg, train=train_cfg, model=model_cfg)


def _train_mode(cfg: Config, settings: QualitySettings, mode: str, data: Path, masks: Path, run: Path,
                cell_labels: Optional[Path]) -> float:
    """Train one model of the bench into `run` (resumes); returns seconds."""
    from .train import train

    start = time.perf_counter()
    train(bench_train_config(cfg, settings, mode), data / "train", data / "train.csv", masks, run,
          cell_labels if mode == "truth" else None)
    return time.perf_counter() - start


def _plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(names, [rows[n]["map"] for n in names], color="#4477aa")
    axes[0].axhline(rows["floor"]["map"], color="#cc3311", ls="--", label="floor")
    axes[0].set_ylim(min(r["map"] for r in rows.values()) - 0.1, 1.0)
    axes[0].set_ylabel("mAP (IoU 0.6)")
    axes[0].legend()
    axes[1].bar(names, [rows[n]["cell_auc"] for n in names], color="#228833")
    axes[1].axhline(0.5, color="#cc3311", ls="--", label="chance")
    axes[1].set_ylim(0.4, 1.0)
    axes[1].set_ylabel("per-cell macro AUC")
    axes[1].legend()
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def bench_quality(cfg: Config, settings: QualitySettings, out: Path) -> dict:
    """Run the whole bench into `out` (data, masks, runs, submissions reused when present)."""
    from .io import atomic_write_text, list_image_ids, read_label_png
    from .predict import predict_submission
    from .score import score_files
    from .segment import f1_score, match_cells, read_masks, segment_folder
    from .synth import generate_dataset

    out.mkdir(parents=True, exist_ok=True)
    data, masks = out / "data", out / "masks"
    start = time.perf_counter()
    if not (data / "manifest.json").is_file():
        generate_dataset(_synth_config(settings, cfg.synth.workers), data, progress=False)
    train_ids, test_ids = list_image_ids(data / "train"), list_image_ids(data / "test")
    for split, ids in (("train", train_ids), ("test", test_ids)):
        segment_folder(data / split, masks, cfg.segment, ids=ids, progress=False)
    totals = np.zeros(3, int)
    for image_id in test_ids:
        totals += match_cells(read_masks(masks, image_id).cells, read_label_png(data / "truth" / f"{image_id}_cells.png"))
    seg_f1 = f1_score(*totals.tolist())[2]
    print(f"bench quality: {len(train_ids)} train / {len(test_ids)} test images (seed {settings.seed}, sides "
          f"{list(settings.sizes)}), segmentation F1 {seg_f1:.3f} on the test cells; {time.perf_counter() - start:.0f} s")

    cell_labels = out / "train_cell_labels.csv"
    write_transferred_labels(data, masks, train_ids, cell_labels)
    train_seconds = {}
    for mode in ("image", "cells", "truth") + tuple(settings.methods):
        train_seconds[mode] = _train_mode(cfg, settings, mode, data, masks, out / f"run_{mode}", cell_labels)
        print(f"trained {mode} model in {train_seconds[mode]:.0f} s")

    sample, solution = data / "sample_submission.csv", data / "solution.csv"
    subs = {"floor": write_floor(sample, masks, out / "floor.csv")}
    rules = dict(OTHERS_RULE, border_weight=0.8, faint_weight=0.8)
    plans = {"broadcast": ("image", dict(cell_weight=0.0, image_score="whole")),
             "weak": ("cells", dict(cell_weight=1.0)),
             "weak+image": ("cells", dict(cell_weight=0.7, image_score="whole", image_model=str(out / "run_image"))),
             "weak+others": ("cells", OTHERS_RULE),
             "weak+rules": ("cells", rules)}
    for method in settings.methods:
        plans[method] = (method, dict(cell_weight=1.0))
        plans[f"{method}+others"] = (method, OTHERS_RULE)
    plans["truth"] = ("truth", dict(cell_weight=1.0))
    for name, (mode, changes) in plans.items():
        pcfg = replace(cfg, predict=replace(cfg.predict, **changes))
        subs[name] = out / f"{name}.csv"
        predict_submission(pcfg, out / f"run_{mode}", data / "test", sample, subs[name], masks=masks, force=True,
                           progress=False)

    truth = per_cell_truth(data, masks, test_ids, cfg.score.iou)
    rows = {}
    for name, path in subs.items():
        scored = score_files(path, solution, iou=cfg.score.iou, strict=cfg.score.strict)
        auc = 0.5 if name == "floor" else cell_auc(read_cells_table(path.with_suffix(".cells.csv")), truth)
        rows[name] = {"map": scored.map, "cell_auc": auc,
                      "per_class_ap": {str(c): ap for c, ap in enumerate(scored.ap) if ap is not None}}
    figures = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
               "segmentation_f1": seg_f1, "train_seconds": train_seconds, "rows": rows,
               "seconds": time.perf_counter() - start}
    print(format_table(rows))
    atomic_write_text(out / "quality.json", json.dumps(figures, indent=1))
    _plot(rows, out / "quality.png")
    print(f"bench quality finished in {figures['seconds'] / 60:.1f} min; {out / 'quality.json'}, {out / 'quality.png'}")
    return figures


def format_table(rows: dict[str, dict]) -> str:
    """The printed table: method, mAP, gain over the floor, per-cell AUC, per-class AP."""
    floor = rows["floor"]["map"]
    classes = sorted({c for r in rows.values() for c in r["per_class_ap"]}, key=int)
    head = f"{'method':<11} {'mAP':>7} {'-floor':>7} {'cellAUC':>7}  per-class AP " + " ".join(f"{c:>4}" for c in classes)
    lines = [head]
    for name, r in rows.items():
        aps = " ".join(f"{r['per_class_ap'].get(c, float('nan')):4.2f}" for c in classes)
        lines.append(f"{name:<11} {r['map']:7.4f} {r['map'] - floor:+7.4f} {r['cell_auc']:7.4f}  {'':12} {aps}")
    return "\n".join(lines)


COLLAPSE_SPREAD = 0.01  # below this within-image spread a model's per-cell outputs are called collapsed


def within_image_spread(probs: dict[tuple[str, int], np.ndarray]) -> float:
    """How much per-cell outputs vary inside an image: std over an image's cells of each class's
    probability, averaged over classes and over the images with >= 2 cells (0 for a broadcast)."""
    by_image: dict[str, list[np.ndarray]] = {}
    for (image_id, _), p in probs.items():
        by_image.setdefault(image_id, []).append(p)
    spreads = [np.stack(ps).std(axis=0).mean() for ps in by_image.values() if len(ps) >= 2]
    return float(np.mean(spreads)) if spreads else 0.0
