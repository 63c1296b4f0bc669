"""Shared fixtures: a tiny synthetic data set (made once per session) and the real HPA images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpa_scc.core.config_images import SynthConfig
from hpa_scc.data.images import find_shared_data

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_synth_config() -> SynthConfig:
    return SynthConfig(n_train=4, n_test=3, sizes=(256, 320), cells_min=6, cells_max=12, fraction_16bit=0.5, seed=7, workers=1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_synth_config) -> Path:
    """A generated synthetic data set in the Kaggle layout (see hpa_scc.synth)."""
    from hpa_scc.synth.dataset import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(tiny_synth_config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = find_shared_data(PROJECT)
    if path is None:
        pytest.skip("../shared/data/hpa_real is absent: the real HPA sample images are not on this machine")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


TINY_RUN_SETTINGS = ["crops.size=32", "model.size=32", "train.epochs=1", "train.batch_size=16", "segment.workers=1",
                     "predict.batch_size=8", "predict.workers=0"]


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> dict:
    """A 1-epoch 32 px model trained on `tiny_data`, with masks of train and test images.

    Returns {"cfg", "run", "masks", "data"}.
    """
    from hpa_scc.core.config import load_config
    from hpa_scc.segment.cache import segment_folder
    from hpa_scc.train.run import train

    cfg = load_config(None, TINY_RUN_SETTINGS)
    root = tmp_path_factory.mktemp("tiny_run")
    masks = root / "masks"
    for split in ("train", "test"):
        segment_folder(tiny_data / split, masks, cfg.segment, workers=1, progress=False)
    train(cfg, tiny_data / "train", tiny_data / "train.csv", masks, root / "run")
    return {"cfg": cfg, "run": root / "run", "masks": masks, "data": tiny_data}


def _gpu_visible() -> bool:
    """A GPU this process may use (without importing TensorFlow): a driver and CUDA_VISIBLE_DEVICES not -1."""
    return shutil.which("nvidia-smi") is not None and os.environ.get("CUDA_VISIBLE_DEVICES", "") != "-1"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped where no GPU is visible (CI never has one)."""
    if _gpu_visible():
        return
    skip = pytest.mark.skip(reason="needs a GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
