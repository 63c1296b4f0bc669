"""`hpa-scc bench train`: training throughput and input-pipeline headroom."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras

from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.layout import CROP_CACHE_DIR, LABELS_FILE, TRAIN_DIR, TRUTH_DIR
from hpa_scc.data.tables import read_labels
from hpa_scc.model.classifier import build_classifier
from hpa_scc.synth.dataset import generate_dataset
from hpa_scc.train.datasets import make_dataset
from hpa_scc.train.examples import make_examples
from hpa_scc.train.sources import CropSource


def generated_training_set(root: Path, n_train: int, size: int, seed: int = 0):
    """A synthetic training set; its truth masks double as the mask cache (same file names)."""
    cfg = SynthConfig(n_train=n_train, n_test=0, sizes=(size,), seed=seed, workers=2)
    generate_dataset(cfg, root, progress=False)
    return root / TRAIN_DIR, root / LABELS_FILE, root / TRUTH_DIR


def bench_train(n_train: int = 16, size: int = 384, model_size: int = 96, steps: int = 10) -> dict:
    """Training images/s at the demo size, and input-pipeline steps/s alone vs with the model."""
    cfg = load_config(None, [f"crops.size={model_size}", f"model.size={model_size}", "train.batch_size=32"])
    with tempfile.TemporaryDirectory() as tmp:
        images, labels_csv, masks = generated_training_set(Path(tmp), n_train, size)
        labels = read_labels(labels_csv)
        examples = make_examples(cfg, images, labels, masks, cache=Path(tmp) / CROP_CACHE_DIR)
        source = CropSource(cfg, images, masks, Path(tmp) / CROP_CACHE_DIR)
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
