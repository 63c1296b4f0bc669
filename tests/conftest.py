"""Shared fixtures: a tiny synthetic data set (made once per session) and the real HPA images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpa_scc.config import SynthConfig
from hpa_scc.io import find_shared_data

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_synth_config() -> SynthConfig:
    return SynthConfig(n_train=4, n_test=3, sizes=(256, 320), cells_min=6, cells_max=12, fraction_16bit=0.5, seed=7, workers=1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_synth_config) -> Path:
    """A generated synthetic data set in the Kaggle layout (see hpa_scc.synth)."""
    from hpa_scc.synth import generate_dataset

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
