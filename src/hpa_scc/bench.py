"""Benchmarks that print figures (`hpa-scc bench encode|score|segment|all`).

Speed and memory targets live here, never in unit tests. Each function returns a dict of
figures and prints them; the numbers depend on the machine.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .classes import NUM_CLASSES


def _random_label_image(rng: np.random.Generator, size: int, n_cells: int) -> np.ndarray:
    """uint16 label image with up to n_cells touching blobs (a cheap stand-in for a segmentation)."""
    labels = np.zeros((size, size), np.uint16)
    radius = size / np.sqrt(n_cells) / 1.6
    for cell in range(1, n_cells + 1):
        y, x = rng.uniform(0, size, 2)
        axes = (int(radius * rng.uniform(0.8, 1.3)), int(radius * rng.uniform(0.6, 1.0)))
        cv2.ellipse(labels, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, cell, -1)
    return labels


def bench_encode(size: int = 2048, n_cells: int = 30, repeats: int = 3) -> dict:
    """Per-cell full-frame `encode_mask` vs `encode_label_image` on one label image."""
    from .encode import encode_label_image, encode_mask

    labels = _random_label_image(np.random.default_rng(0), size, n_cells)
    ids = [int(i) for i in np.unique(labels) if i]
    start = time.perf_counter()
    reference = {i: encode_mask(labels == i) for i in ids}
    naive = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fast = encode_label_image(labels)
        best = min(best, time.perf_counter() - start)
    assert fast == reference, "encode_label_image disagrees with encode_mask"
    figures = {
        "cells": len(ids), "size": size, "naive_ms_per_cell": 1000 * naive / len(ids),
        "fast_ms_per_cell": 1000 * best / len(ids), "speedup": naive / best,
    }
    print(f"encode {size}x{size}, {len(ids)} cells: encode_mask per cell {figures['naive_ms_per_cell']:.2f} ms, "
          f"encode_label_image {figures['fast_ms_per_cell']:.3f} ms/cell -> speed-up x{figures['speedup']:.1f} (tokens identical)")
    return figures


def bench_score(n_images: int = 559, size: int = 2048, n_cells: int = 25, layouts: int = 16) -> dict:
    """Score a synthetic full-size submission (every cell, all 19 labels) against its solution."""
    from .encode import encode_label_image
    from .score import score_files
    from .submission import Prediction, write_submission

    rng = np.random.default_rng(0)
    tokens_truth, tokens_pred = [], []
    kernel = np.ones((9, 9), np.uint8)
    for _ in range(layouts):
        labels = _random_label_image(rng, size, n_cells)
        tokens_truth.append(encode_label_image(labels))
        tokens_pred.append(encode_label_image(cv2.erode(labels, kernel)))
    ids = [f"img{i:04d}" for i in range(n_images)]
    solution, submission = {}, {}
    for k, image_id in enumerate(ids):
        truth, pred = tokens_truth[k % layouts], tokens_pred[k % layouts]
        solution[image_id] = [Prediction(int(c), 1.0, truth[cell]) for cell in truth
                              for c in rng.choice(NUM_CLASSES, size=int(rng.integers(1, 4)), replace=False)]
        submission[image_id] = [Prediction(c, float(rng.random()), pred[cell]) for cell in pred for c in range(NUM_CLASSES)]
    rows = [(i, size, size) for i in ids]
    with tempfile.TemporaryDirectory() as tmp:
        sol_path, sub_path = Path(tmp) / "solution.csv", Path(tmp) / "submission.csv"
        write_submission(sol_path, rows, solution)
        write_submission(sub_path, rows, submission)
        triples = sum(len(v) for v in submission.values())
        start = time.perf_counter()
        result = score_files(sub_path, sol_path)
        seconds = time.perf_counter() - start
        mb = sub_path.stat().st_size / 1e6
    print(f"score {n_images} images {size}x{size}, {triples} detections ({mb:.0f} MB CSV): {seconds:.1f} s, mAP {result.map:.4f}")
    return {"images": n_images, "detections": triples, "seconds": seconds, "map": result.map}


def bench_segment(real: Optional[Path] = None, n_synth: int = 8, synth_size: int = 1024) -> dict:
    """Cell agreement with the reference masks (real images) and synthetic truth; s/image; peak RSS."""
    from .config import SegmentConfig, SynthConfig
    from .io import find_shared_data, list_image_ids, read_label_png, read_rgby
    from .segment import f1_score, match_cells, segment_classical
    from .synth import generate_image

    cfg = SegmentConfig()
    real = real or find_shared_data()
    figures: dict = {"real": {}}
    seconds = []
    if real is not None:
        for image_id in list_image_ids(real / "images"):
            rgby = read_rgby(real / "images", image_id)
            reference = read_label_png(real / "hpacellseg_masks" / f"{image_id}_predictedmask.png")
            start = time.perf_counter()
            seg = segment_classical(rgby, cfg)
            elapsed = time.perf_counter() - start
            seconds.append(elapsed * 2048 ** 2 / (rgby.shape[0] * rgby.shape[1]))
            tp, n_pred, n_truth = match_cells(seg.cells, reference)
            p, r, f1 = f1_score(tp, n_pred, n_truth)
            figures["real"][image_id] = f1
            print(f"real {image_id[:8]} {rgby.shape[1]}x{rgby.shape[0]}: cells {n_pred} vs {n_truth} reference, "
                  f"P {p:.2f} R {r:.2f} F1 {f1:.2f}, {elapsed:.2f} s")
        values = list(figures["real"].values())
        figures["real_median_f1"] = float(np.median(values))
        print(f"real images: median F1 {np.median(values):.3f} (min {min(values):.2f}, max {max(values):.2f})")
    else:
        print("real images: ../shared/data/hpa_real not found, skipped")
    totals = np.zeros(3, int)
    for k in range(n_synth):
        image = generate_image(1000 + k, synth_size, SynthConfig())
        seg = segment_classical(image.rgby, cfg)
        totals += match_cells(seg.cells, image.cells)
    p, r, f1 = f1_score(*totals.tolist())
    figures["synth_f1"] = f1
    print(f"synthetic ({n_synth} images {synth_size}x{synth_size}): P {p:.3f} R {r:.3f} F1 {f1:.3f}")
    if seconds:
        figures["seconds_per_2048"] = float(np.mean(seconds))
        print(f"speed: {np.mean(seconds):.2f} s per 2048x2048 image (one process, {os.cpu_count()} cores visible)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["peak_rss_mb"] = peak
    print(f"peak memory (RSS of this process): {peak:.0f} MB")
    return figures
