"""`hpa-scc bench prepare`: time and disk of `prepare`, projected to the full training set."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.layout import LABELS_FILE, TRAIN_DIR
from hpa_scc.crops.shards import prepare_dataset
from hpa_scc.synth.dataset import generate_dataset

FULL_TRAINING_SET = 21806  # images in the competition's train.csv


def bench_prepare(config: Optional[str] = "default.yaml", n_images: int = 8, size: int = 2048, workers: int = 2) -> dict:
    """`hpa-scc prepare` on generated `size`² images with `config`'s crop settings: seconds and bytes
    per image, projected to the full training set (FULL_TRAINING_SET images)."""
    cfg = load_config(config, [f"segment.workers={workers}", f"prepare.shard_images={max(1, n_images // 4)}"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(SynthConfig(n_train=n_images, n_test=0, sizes=(size,), seed=11, workers=workers), root / "data",
                         progress=False)
        index = prepare_dataset(cfg, root / "data" / TRAIN_DIR, root / "data" / LABELS_FILE, root / "prepared",
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
