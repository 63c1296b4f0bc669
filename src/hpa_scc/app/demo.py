"""`make demo`: the pipeline end to end on the embedded synthetic data set.

Stages: generate data -> segment -> train (weak labels) -> predict the test images (and a
broadcast baseline) -> score against the synthetic truth -> HTML report. Each stage reuses
what an earlier run left (the data set if its manifest matches, the mask cache, the training
run, which resumes).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.config import Config, replace
from hpa_scc.core.layout import (CURVES_FILE, LABELS_FILE, SAMPLE_FILE, SOLUTION_FILE, TEST_DIR, TRAIN_DIR, TRUTH_DIR,
                                 cells_table_path)
from hpa_scc.data.images import list_image_ids, read_rgby
from hpa_scc.data.tables import read_cells_table, read_labels
from hpa_scc.evaluate.pipeline import ensure_generated, floor_map, score_generated, segment_splits, segmentation_f1
from hpa_scc.metrics.classification import COLLAPSE_SPREAD, within_image_spread
from hpa_scc.predict.submit import predict_submission
from hpa_scc.report.pages import legend_html, write_html
from hpa_scc.report.pictures import save_rgb, side_by_side, top_label_overlay
from hpa_scc.report.plots import plot_per_class
from hpa_scc.segment.cache import read_masks
from hpa_scc.train.run import train


def run_demo(cfg: Config, quick: bool = False) -> dict:
    """Run every stage; returns paths and figures (mAP included), prints where outputs are."""
    if quick:
        cfg = replace(cfg, synth=replace(cfg.synth, n_train=4, n_test=2, sizes=(256,)),
                      train=replace(cfg.train, epochs=1), model=replace(cfg.model, size=48), crops=replace(cfg.crops, size=48))
    data = Path(cfg.paths.data)
    report = Path(cfg.paths.report)
    report.mkdir(parents=True, exist_ok=True)
    outputs: dict = {"data": str(data)}
    start = time.time()

    print(f"[1/6] synthetic data -> {data}")
    if ensure_generated(cfg.synth, data):
        print("      up to date (same config), reused")
    labels = read_labels(data / LABELS_FILE)
    counts = np.bincount([c for labs in labels.values() for c in labs], minlength=NUM_CLASSES)

    masks = Path(cfg.paths.masks)
    train_ids, test_ids = list_image_ids(data / TRAIN_DIR), list_image_ids(data / TEST_DIR)
    print(f"      {len(train_ids)} train / {len(test_ids)} test images; image-label counts per class: {counts.tolist()}")
    print(f"[2/6] segmentation ({cfg.segment.backend}) -> {masks}")
    segment_splits(data, masks, cfg.segment)
    f1 = segmentation_f1(data, masks, train_ids + test_ids, cfg.score.iou)
    outputs["segmentation_f1"] = f1
    print(f"      cells matched to the synthetic truth at IoU >= {cfg.score.iou}: F1 {f1:.3f}")

    run = Path(cfg.paths.run)
    print(f"[3/6] training ({cfg.train.mode} mode, {cfg.train.epochs} epochs, {cfg.model.size} px) -> {run}")

    result = train(cfg, data / TRAIN_DIR, data / LABELS_FILE, masks, run)
    outputs["run"] = str(run)
    if result["history"]:
        first, last = result["history"][0], result["history"][-1]
        print(f"      loss {float(first['loss']):.4f} -> {float(last['loss']):.4f}; curves in {run / CURVES_FILE}")

    submission = Path(cfg.paths.submission)
    broadcast = submission.with_name(submission.stem + "_broadcast.csv")
    print(f"[4/6] prediction ({cfg.predict.engine}, cell weight {cfg.predict.cell_weight}) -> {submission}")

    sample = data / SAMPLE_FILE
    predicted = predict_submission(cfg, run, data / TEST_DIR, sample, submission, masks=masks)
    baseline_cfg = replace(cfg, predict=replace(cfg.predict, cell_weight=0.0))
    predict_submission(baseline_cfg, run, data / TEST_DIR, sample, broadcast, masks=masks, progress=False)
    print(f"      {predicted['cells']} cells of {predicted['images']} images; broadcast baseline (cell weight 0) "
          f"-> {broadcast}")

    print(f"[5/6] score against the synthetic truth ({data / SOLUTION_FILE})")

    scored = score_generated(submission, data, cfg.score)
    floor = floor_map(data, masks, submission.with_name(submission.stem + "_floor.csv"), cfg.score)
    floor_true = floor_map(data, data / TRUTH_DIR, submission.with_name(submission.stem + "_floor_truemasks.csv"), cfg.score)
    outputs.update(submission=str(submission), map=scored.map, broadcast_map=score_generated(broadcast, data, cfg.score).map,
                   floor_map=floor, floor_true_masks_map=floor_true)
    plot_per_class(scored, report / "per_class_ap.png", title=f"{submission.name}: mAP {scored.map:.4f}")
    print(f"      mAP {scored.map:.4f} | floor {floor:.4f} (one constant confidence for every cell and label, same masks; "
          f"{floor_true:.4f} with the true masks) | broadcast baseline {outputs['broadcast_map']:.4f}")
    spread = within_image_spread(read_cells_table(cells_table_path(submission)))
    outputs["cell_spread"] = spread
    if spread < COLLAPSE_SPREAD:
        print(f"      WARNING: the model's per-cell outputs barely vary across the cells of an image (spread {spread:.2g} < "
              f"{COLLAPSE_SPREAD}): the model has collapsed and adds nothing over broadcasting")

    print(f"[6/6] report -> {report}")
    page = write_report(cfg, report, run, submission, scored, outputs, test_ids[:6])
    outputs["report"] = str(page)
    print(f"demo finished in {time.time() - start:.0f} s: mAP {scored.map:.4f} (floor {floor:.4f}, "
          f"{scored.map - floor:+.4f}); report {page}")
    return outputs


def _top_labels(cells_table: Path, image_ids: list[str]) -> dict[str, dict[int, int]]:
    """{ID: {cell_id: label with the highest blended probability}} from a per-cell table."""
    wanted, out = set(image_ids), {}
    for (image_id, cell_id), probs in read_cells_table(cells_table).items():
        if image_id in wanted:
            out.setdefault(image_id, {})[cell_id] = int(np.argmax(probs))
    return out


def write_report(cfg: Config, report: Path, run: Path, submission: Path, scored, figures: dict,
                 image_ids: list[str]) -> Path:
    """reports/.../index.html: mAP, per-class AP chart, training curves, overlays coloured by top label."""
    data = Path(cfg.paths.data)
    if (run / CURVES_FILE).is_file():
        shutil.copyfile(run / CURVES_FILE, report / CURVES_FILE)
    tops = _top_labels(cells_table_path(submission), image_ids)
    pictures = [top_label_overlay(read_rgby(data / TEST_DIR, i), read_masks(cfg.paths.masks, i).cells, tops.get(i, {}))
                for i in image_ids]
    if pictures:
        save_rgb(report / "overlays.png", side_by_side(pictures, 360))

    warning = ""
    if figures["cell_spread"] < COLLAPSE_SPREAD:
        warning = (f"<p><b>Warning:</b> the per-cell outputs barely vary inside an image (spread "
                   f"{figures['cell_spread']:.2g}): the model has collapsed.</p>")
    summary = (f"<p>mAP <b>{scored.map:.4f}</b> at mask IoU {scored.iou} on {len(list_image_ids(data / 'test'))} synthetic test "
               f"images.</p><ul><li>floor (no model: every cell every label at one constant confidence, same masks): "
               f"{figures['floor_map']:.4f}; with the true masks {figures['floor_true_masks_map']:.4f}</li>"
               f"<li>broadcast baseline (every cell gets its image's prediction): {figures['broadcast_map']:.4f}</li>"
               f"<li>within-image spread of the per-cell outputs: {figures['cell_spread']:.3f}</li></ul>{warning}"
               f"<p>Submission: {submission}; per-cell table: {cells_table_path(submission)}; model: {run}.</p>")
    sections = [("Score", summary), ("Per-class AP", "<img src='per_class_ap.png'>"),
                ("Training curves", "<img src='curves.png'>")]
    if pictures:
        sections.append(("Test images, cells coloured by top label", "<img src='overlays.png'>" + legend_html()))
    return write_html(report / "index.html", "hpa-scc demo report", sections)
