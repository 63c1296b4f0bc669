"""`hpa-scc bench encode` and `bench score`: the mask codec and the metric at full size."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.layout import SOLUTION_FILE
from hpa_scc.metrics.competition import score_files
from hpa_scc.submission.encode import encode_label_image, encode_mask
from hpa_scc.submission.rows import Prediction, write_submission


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
        sol_path, sub_path = Path(tmp) / SOLUTION_FILE, Path(tmp) / "submission.csv"
        write_submission(sol_path, rows, solution)
        write_submission(sub_path, rows, submission)
        triples = sum(len(v) for v in submission.values())
        start = time.perf_counter()
        result = score_files(sub_path, sol_path)
        seconds = time.perf_counter() - start
        mb = sub_path.stat().st_size / 1e6
    print(f"score {n_images} images {size}x{size}, {triples} detections ({mb:.0f} MB CSV): {seconds:.1f} s, mAP {result.map:.4f}")
    return {"images": n_images, "detections": triples, "seconds": seconds, "map": result.map}
