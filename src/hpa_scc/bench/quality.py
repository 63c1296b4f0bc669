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
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from sklearn.metrics import average_precision_score

from hpa_scc.bench.training import generated_training_set
from hpa_scc.core.classes import NUM_CLASSES, to_multi_hot
from hpa_scc.core.config import Config, load_config, replace
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.files import atomic_write_text
from hpa_scc.crops.cache import load_or_make_crops
from hpa_scc.data.images import list_image_ids, read_label_png
from hpa_scc.data.tables import read_cell_labels, read_cells_table, read_labels
from hpa_scc.evaluate.baselines import per_cell_truth, write_floor, write_transferred_labels
from hpa_scc.metrics.agreement import f1_score, match_cells
from hpa_scc.metrics.classification import cell_auc
from hpa_scc.metrics.competition import score_files
from hpa_scc.model.classifier import load_classifier
from hpa_scc.predict.submit import predict_submission
from hpa_scc.report.plots import plot_quality
from hpa_scc.segment.cache import read_masks, segment_folder
from hpa_scc.synth.dataset import generate_dataset
from hpa_scc.train.run import train


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
    start = time.perf_counter()
    train(bench_train_config(cfg, settings, mode), data / "train", data / "train.csv", masks, run,
          cell_labels if mode == "truth" else None)
    return time.perf_counter() - start


def bench_quality(cfg: Config, settings: QualitySettings, out: Path) -> dict:
    """Run the whole bench into `out` (data, masks, runs, submissions reused when present)."""
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
    plot_quality(rows, out / "quality.png")
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


def bench_weak_labels(n_train: int = 60, n_val: int = 20, size: int = 384, model_size: int = 64, epochs: int = 6) -> dict:
    """Per-cell classification mAP on held-out synthetic cells for modes cells, cells + 1 pseudo
    round, and truth, with the same data and epoch budget per round."""
    base = [f"crops.size={model_size}", f"model.size={model_size}", "train.batch_size=32", f"train.epochs={epochs}",
            "train.val_fraction=0", "train.learning_rate=0.002"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, labels_csv, masks = generated_training_set(root / "train", n_train, size, seed=1)
        val_images, val_labels_csv, val_masks = generated_training_set(root / "val", n_val, size, seed=2)
        cell_labels = root / "train" / "cell_labels.csv"
        val_cells = read_cell_labels(root / "val" / "cell_labels.csv")
        crops_cfg = load_config(None, base)
        val_x, val_y = [], []
        for image_id in read_labels(val_labels_csv):
            crops = load_or_make_crops(val_images, val_masks, image_id, crops_cfg.crops, model_size, None, 4)
            val_x.append(crops.crops)
            val_y += [to_multi_hot(val_cells[(image_id, int(c))]) for c in crops.cell_ids]
        val_x = np.concatenate(val_x).astype(np.float32)
        val_y = np.stack(val_y)
        present = [c for c in range(NUM_CLASSES) if val_y[:, c].any()]
        for name, extra in (("cells", ["train.mode=cells"]), ("cells+pseudo", ["train.mode=cells", "train.pseudo_rounds=1"]),
                            ("truth", ["train.mode=truth"])):
            cfg = load_config(None, base + extra)
            run = root / f"run_{name}"
            train(cfg, images, labels_csv, masks, run, cell_labels if name == "truth" else None)
            probs = load_classifier(run / "model.keras").predict(val_x, verbose=0)
            results[name] = float(np.mean([average_precision_score(val_y[:, c], probs[:, c]) for c in present]))
    print(f"per-cell classification mAP on {len(val_y)} held-out synthetic cells ({n_train} train images, "
          f"{epochs} epochs a round, {model_size}px): " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return results
