"""`hpa-scc bench quality`: does the classifier learn per-cell patterns? Figures beside the floor.

    hpa-scc bench quality --config configs/cpu.yaml [--seed 0] [--train-images N] [--test-images N]

Generates a seeded synthetic set with cell truth, segments it with the project's segmenter,
trains an `image`, a `cells` (weak, inherited labels) and a `truth` (true cell labels moved onto
the project's cells) model with the given recipe, predicts the test images and prints one table:

    floor         every cell, every label, one constant confidence (no model) on the project's masks
    broadcast     the image model's whole-image prediction given to every cell (cell weight 0)
    broadcast-weak  the weak model's image prediction (the mean over the image's cells) given to every cell
    weak          the cells-mode model's per-cell output (cell weight 1)
    weak+image    weak blended with the image model's whole-image pass (0.7 cell + 0.3 image)
    weak+others   weak, 0.7 x cell + 0.3 x the mean of the image's other cells (4th place's rule)
    weak+rules    weak+others, cells at the image edge and faint cells x 0.8
    weak+neg      weak with the Negative score derived: prod(1 - p) of the cell's 18 other labels
    truth         the truth-mode model's per-cell output (an upper bound for weak labels)

`--methods mil attn oof mil-oof pseudo mil-ens` add rows (and training time): `mil` (multiple-instance
training, train.mil_*), `attn` (mil with attention pooling), `oof` (out-of-fold pseudo-labels:
train.pseudo_folds folds, train.pseudo_rounds >= 1), `mil-oof` (the same, its fold models trained by mil: 3rd place's out-of-fold relabelling of a
weak model), `pseudo` (in-sample pseudo-label rounds: the model relabels its own training cells) and
`mil-ens` (ENSEMBLE_MEMBERS mil models of seeds train.seed + 0, 1, ... averaged: `train.ensemble`), each
alone, with the `+others` rule, with `+neg` (derived Negative) and as `*image` (the product with the image model's whole-image
prediction, 2nd place's final score). This is the one weak-label bench.

`--repeats N` trains every model N times (train.seed + 0 .. N-1, into run_MODE, run_MODE_r1, ...)
and gives each row the mean over the repeats and their spread (max - min mAP): two trainings of
identical settings on the same set can differ by far more than the gap between two methods.

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

from hpa_scc.core.config import Config, replace
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.files import atomic_write_text
from hpa_scc.core.layout import LABELS_FILE, SAMPLE_FILE, TEST_DIR, TRAIN_DIR, cells_table_path
from hpa_scc.data.tables import read_cells_table
from hpa_scc.evaluate.baselines import per_cell_truth, write_floor, write_transferred_labels
from hpa_scc.evaluate.pipeline import ensure_generated, score_generated, segment_splits, segmentation_f1
from hpa_scc.metrics.classification import cell_auc
from hpa_scc.predict.submit import predict_submission
from hpa_scc.report.plots import plot_quality
from hpa_scc.synth.appearances import APPEARANCES
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
    # An epoch of the image model is a few batches (238 images): at the recipe's batch of 32 it got
    # ~150 optimizer steps to the cell models' ~1500 and ranked below the floor; batches of 8 give it
    # 4x the steps at about the same compute.
    image_batch_size: int = 8
    methods: tuple[str, ...] = ()  # extra weak-label methods: mil, attn, oof, mil-oof, pseudo, mil-ens
    appearance: str = "default"  # the generator's look (synth.appearances): default | other (nothing was tuned on it)
    p_express: float = 0.75  # chance that a cell shows each of its image's patterns (low-expression variant: 0.15-0.6)
    repeats: int = 1  # trainings of every model (train.seed + 0 .. repeats - 1); rows give their mean and spread

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(EXTRA_METHODS)
        if unknown:
            raise ValueError(f"bench quality: unknown methods {sorted(unknown)} (choose from {', '.join(EXTRA_METHODS)})")
        if self.appearance not in APPEARANCES:
            raise ValueError(f"bench quality: unknown appearance {self.appearance!r} (choose from {', '.join(APPEARANCES)})")
        if self.repeats < 1:
            raise ValueError(f"bench quality: repeats must be >= 1, got {self.repeats}")


EXTRA_METHODS = ("mil", "attn", "oof", "mil-oof", "pseudo", "mil-ens")
ENSEMBLE_MEMBERS = 3  # mil-ens: members of the ensemble unless the recipe sets train.members >= 2


IMAGE_PRODUCT = dict(cell_weight=0.5, image_score="whole", blend="product")  # 2nd place: image x cell (same ranks)
OTHERS_RULE = dict(cell_weight=0.7, image_score="others_mean", blend="linear")  # 4th place: 0.7 cell + 0.3 others
# Weak labels almost never say Negative (an image is Negative only when none of its cells shows a
# pattern), so a weak model learns Negative = 0 for most negative cells; derived: prod(1 - p) of the 18 others.
DERIVED_NEGATIVE = dict(cell_weight=1.0, negative="derived")


def synth_config(settings: QualitySettings, workers: int) -> SynthConfig:
    return SynthConfig(n_train=settings.n_train, n_test=settings.n_test, sizes=settings.sizes, seed=settings.seed,
                       class_balance=settings.class_balance, p_express=settings.p_express, workers=workers,
                       **APPEARANCES[settings.appearance])


def bench_train_config(cfg: Config, settings: QualitySettings, mode: str) -> Config:
    """The recipe `cfg` set up to train the bench's `mode` model: image, cells, truth, mil, attn
    (mil with attention pooling), oof / mil-oof
    (inherited labels, then out-of-fold relabelling: at least 1 round of 2 folds), pseudo
    (inherited labels, then at least 1 round in which the model relabels its own cells) or mil-ens
    (an ensemble of mil models: train.members, or ENSEMBLE_MEMBERS when the recipe has one model)."""
    if mode in ("oof", "mil-oof"):
        train_cfg = replace(cfg.train, mode="cells" if mode == "oof" else "mil",
                            pseudo_rounds=max(1, cfg.train.pseudo_rounds), pseudo_folds=max(2, cfg.train.pseudo_folds))
    elif mode == "attn":
        train_cfg = replace(cfg.train, mode="mil", mil_pooling="attention", pseudo_rounds=0, pseudo_folds=0)
    elif mode == "mil-ens":
        members = cfg.train.members if cfg.train.members > 1 else ENSEMBLE_MEMBERS
        train_cfg = replace(cfg.train, mode="mil", members=members, pseudo_rounds=0, pseudo_folds=0)
    elif mode == "pseudo":
        train_cfg = replace(cfg.train, mode="cells", pseudo_rounds=max(1, cfg.train.pseudo_rounds), pseudo_folds=0)
    else:
        train_cfg = replace(cfg.train, mode=mode, pseudo_rounds=0, pseudo_folds=0)
    model_cfg = cfg.model
    if mode == "image":
        train_cfg = replace(train_cfg, epochs=settings.image_epochs, batch_size=settings.image_batch_size)
        model_cfg = replace(model_cfg, size=settings.image_size)
    return replace(cfg, train=train_cfg, model=model_cfg)


def _train_mode(cfg: Config, settings: QualitySettings, mode: str, data: Path, masks: Path, run: Path,
                cell_labels: Optional[Path]) -> float:
    """Train one model of the bench into `run` (resumes); returns seconds."""
    start = time.perf_counter()
    train(bench_train_config(cfg, settings, mode), data / TRAIN_DIR, data / LABELS_FILE, masks, run,
          cell_labels if mode == "truth" else None)
    return time.perf_counter() - start


def bench_quality(cfg: Config, settings: QualitySettings, out: Path) -> dict:
    """Run the whole bench into `out` (data, masks, runs, submissions reused when present)."""
    out.mkdir(parents=True, exist_ok=True)
    data, masks = out / "data", out / "masks"
    start = time.perf_counter()
    ensure_generated(synth_config(settings, cfg.synth.workers), data, progress=False)
    train_ids, test_ids = segment_splits(data, masks, cfg.segment, progress=False)
    seg_f1 = segmentation_f1(data, masks, test_ids, cfg.score.iou)
    print(f"bench quality: {len(train_ids)} train / {len(test_ids)} test images (seed {settings.seed}, sides "
          f"{list(settings.sizes)}), segmentation F1 {seg_f1:.3f} on the test cells; {time.perf_counter() - start:.0f} s")

    cell_labels = out / "train_cell_labels.csv"
    write_transferred_labels(data, masks, train_ids, cell_labels)
    train_seconds = {}
    for repeat in range(settings.repeats):
        repeat_cfg = replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + repeat))
        for mode in ("image", "cells", "truth") + tuple(settings.methods):
            run = run_folder(out, mode, repeat)
            train_seconds[run.name] = _train_mode(repeat_cfg, settings, mode, data, masks, run, cell_labels)
            print(f"trained {run.name} in {train_seconds[run.name]:.0f} s")

    sample = data / SAMPLE_FILE
    subs = {"floor": [write_floor(sample, masks, out / "floor.csv")]}
    plans = prediction_plans(settings.methods)
    for repeat in range(settings.repeats):
        for name, (mode, changes) in plans.items():
            if changes.get("image_score") == "whole" and mode != "image":
                changes = dict(changes, image_model=str(run_folder(out, "image", repeat)))
            pcfg = replace(cfg, predict=replace(cfg.predict, **changes))
            path = out / f"{name}{repeat_suffix(repeat)}.csv"
            predict_submission(pcfg, run_folder(out, mode, repeat), data / TEST_DIR, sample, path, masks=masks,
                               force=True, progress=False)
            subs.setdefault(name, []).append(path)

    truth = per_cell_truth(data, masks, test_ids, cfg.score.iou)
    rows = {}
    for name, paths in subs.items():
        runs = []
        for path in paths:
            scored = score_generated(path, data, cfg.score)
            auc = 0.5 if name == "floor" else cell_auc(read_cells_table(cells_table_path(path)), truth)
            runs.append({"map": scored.map, "cell_auc": auc,
                         "per_class_ap": {str(c): ap for c, ap in enumerate(scored.ap) if ap is not None}})
        rows[name] = mean_row(runs)
    figures = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
               "segmentation_f1": seg_f1, "train_seconds": train_seconds, "rows": rows,
               "seconds": time.perf_counter() - start}
    print(format_table(rows))
    atomic_write_text(out / "quality.json", json.dumps(figures, indent=1))
    plot_quality(rows, out / "quality.png")
    print(f"bench quality finished in {figures['seconds'] / 60:.1f} min; {out / 'quality.json'}, {out / 'quality.png'}")
    return figures


def repeat_suffix(repeat: int) -> str:
    """File-name suffix of a repeat's runs and submissions: none for the first (older folders resume)."""
    return "" if repeat == 0 else f"_r{repeat}"


def run_folder(out: Path, mode: str, repeat: int) -> Path:
    """The run folder of one model of the bench: OUT/run_MODE, OUT/run_MODE_r1, ..."""
    return out / f"run_{mode}{repeat_suffix(repeat)}"


def mean_row(runs: list[dict]) -> dict:
    """One table row from the repeats' scores ({map, cell_auc, per_class_ap}): their means, plus
    `map_runs` (every repeat's mAP, in order)."""
    classes = {c for run in runs for c in run["per_class_ap"]}
    return {"map": float(np.mean([run["map"] for run in runs])),
            "cell_auc": float(np.mean([run["cell_auc"] for run in runs])),
            "per_class_ap": {c: float(np.mean([run["per_class_ap"][c] for run in runs if c in run["per_class_ap"]]))
                             for c in sorted(classes, key=int)},
            "map_runs": [run["map"] for run in runs]}


def prediction_plans(methods: tuple[str, ...]) -> dict[str, tuple[str, dict]]:
    """Row name -> (the model it predicts with, the predict settings it changes), in table order.
    Every row names its Negative: only the +neg rows derive it, whatever the config says."""
    rules = dict(OTHERS_RULE, border_weight=0.8, faint_weight=0.8)
    plans = {"broadcast": ("image", dict(cell_weight=0.0, image_score="whole")),
             "broadcast-weak": ("cells", dict(cell_weight=0.0, image_score="cell_mean")),
             "weak": ("cells", dict(cell_weight=1.0)),
             "weak+image": ("cells", dict(cell_weight=0.7, image_score="whole")),
             "weak+others": ("cells", OTHERS_RULE),
             "weak+rules": ("cells", rules),
             "weak+neg": ("cells", DERIVED_NEGATIVE)}
    for method in methods:
        plans[method] = (method, dict(cell_weight=1.0))
        plans[f"{method}+others"] = (method, OTHERS_RULE)
        plans[f"{method}*image"] = (method, IMAGE_PRODUCT)
        plans[f"{method}+neg"] = (method, DERIVED_NEGATIVE)
    plans["truth"] = ("truth", dict(cell_weight=1.0))
    return {name: (mode, {"negative": "predicted", **changes}) for name, (mode, changes) in plans.items()}


def format_table(rows: dict[str, dict]) -> str:
    """The printed table: method, mAP, gain over the floor, that gain as a share of the truth
    model's gain (`/truth`), per-cell AUC, per-class AP; with repeats, `spread` (max - min mAP of
    the row's trainings) after the mAP."""
    floor = rows["floor"]["map"]
    truth_gain = rows["truth"]["map"] - floor if "truth" in rows else float("nan")
    classes = sorted({c for r in rows.values() for c in r["per_class_ap"]}, key=int)
    repeated = any(len(r.get("map_runs", ())) > 1 for r in rows.values())
    width = max(11, *(len(name) for name in rows))
    head = (f"{'method':<{width}} {'mAP':>7}" + (f" {'spread':>6}" if repeated else "")
            + f" {'-floor':>7} {'/truth':>6} {'cellAUC':>7}  per-class AP " + " ".join(f"{c:>4}" for c in classes))
    lines = [head]
    for name, r in rows.items():
        aps = " ".join(f"{r['per_class_ap'].get(c, float('nan')):4.2f}" for c in classes)
        share = (r["map"] - floor) / truth_gain if truth_gain > 0 else float("nan")
        runs = r.get("map_runs") or [r["map"]]
        spread = f" {max(runs) - min(runs):6.4f}" if repeated else ""
        lines.append(f"{name:<{width}} {r['map']:7.4f}{spread} {r['map'] - floor:+7.4f} {share:6.2f} {r['cell_auc']:7.4f}  "
                     f"{'':12} {aps}")
    return "\n".join(lines)
