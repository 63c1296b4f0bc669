"""Benchmarks that print figures (`hpa-scc bench encode|score|segment|all`).

Speed and memory targets live here, never in unit tests. Each function returns a dict of
figures and prints them; the numbers depend on the machine.
"""

from __future__ import annotations

import os
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


def _bench_data(root: Path, n_train: int, size: int, seed: int = 0):
    """A synthetic training set; its truth masks double as the mask cache (same file names)."""
    from .config import SynthConfig
    from .synth import generate_dataset

    cfg = SynthConfig(n_train=n_train, n_test=0, sizes=(size,), seed=seed, workers=2)
    generate_dataset(cfg, root, progress=False)
    return root / "train", root / "train.csv", root / "truth"


def bench_train(n_train: int = 16, size: int = 384, model_size: int = 96, steps: int = 10) -> dict:
    """Training images/s at the demo size, and input-pipeline steps/s alone vs with the model."""
    import keras

    from .config import load_config
    from .io import read_labels
    from .model import build_classifier
    from .train import CropSource, make_dataset, make_examples

    cfg = load_config(None, [f"crops.size={model_size}", f"model.size={model_size}", "train.batch_size=32"])
    with tempfile.TemporaryDirectory() as tmp:
        images, labels_csv, masks = _bench_data(Path(tmp), n_train, size)
        labels = read_labels(labels_csv)
        examples = make_examples(cfg, images, labels, masks, cache=Path(tmp) / "crops")
        source = CropSource(cfg, images, masks, Path(tmp) / "crops")
        ds = make_dataset(examples, source, cfg, training=True).repeat()
        iterator = iter(ds)
        next(iterator)
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        pipeline = steps / (time.perf_counter() - start)
        model = build_classifier(cfg.model)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # compile / warm up
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        with_model = steps / (time.perf_counter() - start)
    batch = cfg.train.batch_size
    print(f"train {model_size}px batch {batch} ({len(examples)} crops): input pipeline alone {pipeline:.1f} steps/s "
          f"({pipeline * batch:.0f} crops/s); with the model {with_model:.2f} steps/s ({with_model * batch:.1f} crops/s); "
          f"pipeline headroom x{pipeline / with_model:.1f}")
    return {"pipeline_steps_per_s": pipeline, "train_steps_per_s": with_model, "train_images_per_s": with_model * batch}


def bench_weak_labels(n_train: int = 60, n_val: int = 20, size: int = 384, model_size: int = 64, epochs: int = 6) -> dict:
    """Per-cell classification mAP on held-out synthetic cells for modes cells, cells + 1 pseudo
    round, and truth, with the same data and epoch budget per round."""
    from sklearn.metrics import average_precision_score

    from .config import load_config
    from .crops import load_or_make_crops
    from .io import read_cell_labels, read_labels
    from .model import load_classifier
    from .classes import to_multi_hot
    from .train import train

    base = [f"crops.size={model_size}", f"model.size={model_size}", "train.batch_size=32", f"train.epochs={epochs}",
            "train.val_fraction=0", "train.learning_rate=0.002"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, labels_csv, masks = _bench_data(root / "train", n_train, size, seed=1)
        val_images, val_labels_csv, val_masks = _bench_data(root / "val", n_val, size, seed=2)
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


def _throughput(engine, batch: np.ndarray, repeats: int) -> float:
    """Crops/s of an engine on one pre-made batch (after one warm-up call)."""
    engine(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        engine(batch)
    return repeats * len(batch) / (time.perf_counter() - start)


def bench_predict(n_images: int = 16, size: int = 2048, model_size: int = 128, batch_size: int = 64,
                  repeats: int = 5, project_images: int = 559, project_cells: int = 25) -> dict:
    """Model-only crops/s per engine, streaming pipeline cells/s on synthetic 2048² images with
    cached masks (ratio to model-only), and the projected time for a 559-image test set."""
    from .config import SynthConfig, load_config, replace, save_config
    from .io import list_image_ids
    from .model import build_classifier, export_onnx
    from .predict import PrepareSpec, load_engine, predict_submission, prepared_stream
    from .segment import segment_folder
    from .synth import generate_dataset

    cfg = load_config(None, [f"crops.size={model_size}", f"model.size={model_size}", f"predict.batch_size={batch_size}"])
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        run.mkdir()
        build_classifier(cfg.model).save(run / "model.keras")
        save_config(cfg, run / "config.yaml")
        export_onnx(run)
        batch = np.random.default_rng(0).integers(0, 256, (batch_size, model_size, model_size, 4)).astype(np.float32)
        for name in ("keras", "onnx"):
            figures[f"{name}_model_crops_per_s"] = _throughput(load_engine(run, name), batch, repeats)
            print(f"model only, {name}: {figures[f'{name}_model_crops_per_s']:.1f} crops/s "
                  f"({model_size}px, batch {batch_size})")
        synth = SynthConfig(n_train=0, n_test=n_images, sizes=(size,), cells_min=project_cells - 5,
                            cells_max=project_cells + 5, cell_radius=0.09, seed=5, workers=2)
        generate_dataset(synth, root / "data", progress=False)
        images, masks = root / "data" / "test", root / "masks"
        start = time.perf_counter()
        segment_folder(images, masks, cfg.segment, progress=False)
        seg_seconds = (time.perf_counter() - start) / len(list_image_ids(images))
        figures["segment_s_per_image"] = seg_seconds
        print(f"segmentation: {seg_seconds:.2f} s per {size}² image ({cfg.segment.workers} processes)")
        spec = PrepareSpec(str(images), str(masks), cfg.segment, cfg.crops, cfg.model.size, cfg.model.channels, None)
        ids = list_image_ids(images)
        list(prepared_stream(ids[:2], spec, cfg.predict.workers, cfg.predict.prefetch))  # start-up, page cache
        start = time.perf_counter()
        prep_cells = sum(len(p.cell_ids) for p in prepared_stream(ids, spec, cfg.predict.workers, cfg.predict.prefetch))
        figures["prepare_cells_per_s"] = prep_cells / (time.perf_counter() - start)
        print(f"preparation only (read, cached masks, crops, tokens; {cfg.predict.workers} processes): "
              f"{figures['prepare_cells_per_s']:.1f} cells/s")
        for name in ("keras", "onnx"):
            run_cfg = replace(cfg, predict=replace(cfg.predict, engine=name))
            predict_submission(run_cfg, run, images, root / "data" / "sample_submission.csv", root / f"warm_{name}.csv",
                               masks=masks, progress=False)  # loads libraries, compiles
            start = time.perf_counter()
            result = predict_submission(run_cfg, run, images, root / "data" / "sample_submission.csv",
                                        root / f"{name}.csv", masks=masks, progress=False)
            seconds = time.perf_counter() - start
            cells_per_s = result["cells"] / seconds
            ratio = cells_per_s / figures[f"{name}_model_crops_per_s"]
            # Both stages share the same cores: the best a pipeline can do is one cell's model time
            # plus its preparation time, spread over the cores (perfect overlap, no idle core).
            shared = 1.0 / (1.0 / figures[f"{name}_model_crops_per_s"] + 1.0 / figures["prepare_cells_per_s"])
            figures[f"{name}_pipeline_cells_per_s"] = cells_per_s
            figures[f"{name}_ratio"] = ratio
            figures[f"{name}_ratio_to_shared_bound"] = cells_per_s / shared
            print(f"pipeline, {name}: {result['cells']} cells of {result['images']} images in {seconds:.1f} s = "
                  f"{cells_per_s:.1f} cells/s: x{ratio:.2f} of model only, x{cells_per_s / shared:.2f} of the "
                  f"{shared:.1f} cells/s that model + preparation allow on shared cores (CSV, table, validation included)")
        best = max(("keras", "onnx"), key=lambda n: figures[f"{n}_pipeline_cells_per_s"])
        projected = project_images * (seg_seconds + project_cells / figures[f"{best}_pipeline_cells_per_s"])
        figures["projected_minutes"] = projected / 60
        print(f"projected: {project_images} images of {size}² with ~{project_cells} cells, segmentation included, "
              f"{best} engine: {projected / 60:.1f} min on this machine ({os.cpu_count()} cores)")
    return figures


FULL_TRAINING_SET = 21806  # images in the competition's train.csv


def bench_prepare(config: Optional[str] = "default.yaml", n_images: int = 8, size: int = 2048, workers: int = 2) -> dict:
    """`hpa-scc prepare` on generated `size`² images with `config`'s crop settings: seconds and bytes
    per image, projected to the full training set (FULL_TRAINING_SET images)."""
    from .config import SynthConfig, load_config
    from .prepare import prepare_dataset
    from .synth import generate_dataset

    cfg = load_config(config, [f"segment.workers={workers}", f"prepare.shard_images={max(1, n_images // 4)}"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(SynthConfig(n_train=n_images, n_test=0, sizes=(size,), seed=11, workers=workers), root / "data",
                         progress=False)
        index = prepare_dataset(cfg, root / "data" / "train", root / "data" / "train.csv", root / "prepared",
                                progress=False)
        disk = sum(p.stat().st_size for p in (root / "prepared").glob("shard_*.npz"))
    per_image_s, per_image_mb = index["seconds"] / n_images, disk / n_images / 1e6
    cells = index["cells"] / n_images
    figures = {"images": n_images, "size": size, "workers": workers, "crop_side": cfg.model.size,
               "cells_per_image": cells, "seconds_per_image": per_image_s, "mb_per_image": per_image_mb,
               "projected_hours": per_image_s * FULL_TRAINING_SET / 3600,
               "projected_gb": per_image_mb * FULL_TRAINING_SET / 1e3}
    print(f"prepare {n_images} generated {size}² images ({cells:.1f} cells each, {cfg.model.size} px crops, "
          f"{workers} processes): {per_image_s:.2f} s and {per_image_mb:.2f} MB per image")
    print(f"projected for the full training set ({FULL_TRAINING_SET} images of {size}²): "
          f"{figures['projected_hours']:.1f} h, {figures['projected_gb']:.1f} GB on this machine "
          f"({os.cpu_count()} cores); real fields hold 8-46 cells (../shared/data/hpa_real): scale by cells")
    return figures


def bench_predict_memory(config: Optional[str] = "default.yaml", size: int = 3072) -> dict:
    """Peak RSS of `hpa-scc predict` on one generated `size`² image (segmentation, crops, model at
    `config`'s input side, TTA as configured), in a fresh process with predict.workers 0."""
    import subprocess
    import sys

    from .config import SynthConfig, load_config, save_config
    from .model import build_classifier
    from .synth import generate_dataset

    cfg = load_config(config, ["predict.workers=0"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(SynthConfig(n_train=0, n_test=1, sizes=(size,), seed=9, workers=1), root / "data", progress=False)
        run = root / "run"
        run.mkdir()
        build_classifier(cfg.model).save(run / "model.keras")
        save_config(cfg, run / "config.yaml")
        command = [sys.executable, "-c", "import resource, sys; from hpa_scc.cli import main; code = main(sys.argv[1:]); "
                   "print(f'PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}'); sys.exit(code)",
                   "predict", "--model", str(run), "--images", str(root / "data" / "test"),
                   "--sample", str(root / "data" / "sample_submission.csv"), "--out", str(root / "sub.csv"),
                   "--quiet", "--workers", "0"] + (["--config", config] if config else [])
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"predict failed: {done.stderr[-500:]}")
    peak = float(done.stdout.split("PEAK_RSS_MB")[-1].split()[0])
    print(f"predict one {size}² image ({cfg.model.size} px model, TTA {cfg.predict.tta}, one process): "
          f"peak RSS {peak:.0f} MB, {seconds:.1f} s")
    return {"size": size, "model_size": cfg.model.size, "peak_rss_mb": peak, "seconds": seconds}
