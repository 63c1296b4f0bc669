"""`make demo`: the pipeline end to end on the embedded synthetic data set.

Stages run so far: generate data -> read it back -> segment -> train (weak labels) -> write
pictures; each stage reuses what an earlier run left (the data set if its manifest matches,
the mask cache, the training run, which resumes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .config import Config, config_to_dict, replace


def _data_is_current(cfg: Config, data: Path) -> bool:
    manifest = data / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("config") == config_to_dict(cfg.synth)
    except json.JSONDecodeError:
        return False


def run_demo(cfg: Config, quick: bool = False) -> dict:
    """Run every available stage; returns paths and figures, prints where outputs are."""
    from .io import find_shared_data, list_image_ids, read_labels, read_rgby
    from .report import composite, overlay, save_rgb, side_by_side
    from .segment import f1_score, match_cells, read_masks, segment_folder
    from .io import read_label_png
    from .synth import generate_dataset

    if quick:
        cfg = replace(cfg, synth=replace(cfg.synth, n_train=4, n_test=2, sizes=(256,)),
                      train=replace(cfg.train, epochs=1), model=replace(cfg.model, size=48), crops=replace(cfg.crops, size=48))
    data = Path(cfg.paths.data)
    report = Path(cfg.paths.report)
    report.mkdir(parents=True, exist_ok=True)
    outputs: dict = {"data": str(data)}
    start = time.time()

    print(f"[1/4] synthetic data -> {data}")
    if _data_is_current(cfg, data):
        print("      up to date (same config), reused")
    else:
        generate_dataset(cfg.synth, data)
    labels = read_labels(data / "train.csv")
    train_ids, test_ids = list_image_ids(data / "train"), list_image_ids(data / "test")
    counts = np.bincount([c for labs in labels.values() for c in labs], minlength=19)
    print(f"      {len(train_ids)} train / {len(test_ids)} test images; image-label counts per class: {counts.tolist()}")

    masks = Path(cfg.paths.masks)
    print(f"[2/4] segmentation ({cfg.segment.backend}) -> {masks}")
    for split, ids in (("train", train_ids), ("test", test_ids)):
        segment_folder(data / split, masks, cfg.segment, ids=ids)
    totals = np.zeros(3, int)
    for image_id in train_ids + test_ids:
        truth = read_label_png(data / "truth" / f"{image_id}_cells.png")
        totals += match_cells(read_masks(masks, image_id).cells, truth)
    f1 = f1_score(*totals.tolist())[2]
    outputs["segmentation_f1"] = f1
    print(f"      cells matched to the synthetic truth at IoU >= 0.6: F1 {f1:.3f}")

    run = Path(cfg.paths.run)
    print(f"[3/4] training ({cfg.train.mode} mode, {cfg.train.epochs} epochs, {cfg.model.size} px) -> {run}")
    from .train import train

    result = train(cfg, data / "train", data / "train.csv", masks, run)
    outputs["run"] = str(run)
    if result["history"]:
        first, last = result["history"][0], result["history"][-1]
        print(f"      loss {float(first['loss']):.4f} -> {float(last['loss']):.4f}; curves in {run / 'curves.png'}")

    print(f"[4/4] pictures -> {report}")
    first = test_ids[0] if test_ids else train_ids[0]
    split = "test" if test_ids else "train"
    rgby = read_rgby(data / split, first)
    pictures = [composite(rgby), overlay(composite(rgby), read_masks(masks, first).cells, (255, 255, 255), 2)]
    real = find_shared_data()
    if real is not None:
        real_ids = list_image_ids(real / "images")
        if real_ids:
            pictures.append(composite(read_rgby(real / "images", real_ids[0])))
    preview = save_rgb(report / "preview.png", side_by_side(pictures, 384))
    outputs["preview"] = str(preview)
    print(f"      {preview}: synthetic image | its segmentation" + (" | a real HPA image" if real else ""))
    print(f"demo finished in {time.time() - start:.0f} s; outputs: data {data}, masks {masks}, report {report}")
    return outputs
