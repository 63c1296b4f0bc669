"""The classifier learns: a test that fails when the model learns nothing.

Trains the CPU recipe (configs/cpu.yaml, shrunk: small crops, few epochs) from random
initialisation in truth mode on a tiny generated set with four very distinct patterns, then
scores held-out cells in inference mode. A constant (collapsed) model has AUC 0.5 and no spread.
About two minutes on 2 cores.
"""

import numpy as np
import pytest
from conftest import PROJECT

from hpa_scc.core.classes import to_multi_hot
from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import SynthConfig

pytestmark = pytest.mark.slow  # training for two minutes

DISTINCT = (0, 10, 13, 16)  # nucleoplasm, microtubules, plasma membrane, cytosol


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from hpa_scc.synth.dataset import generate_dataset
    from hpa_scc.train.run import train

    root = tmp_path_factory.mktemp("learning")
    synth = SynthConfig(n_train=64, n_test=10, sizes=(256,), cells_min=8, cells_max=14, classes=DISTINCT,
                        class_balance=1.0, seed=11, workers=2)
    generate_dataset(synth, root, progress=False)
    cfg = load_config(PROJECT / "configs" / "cpu.yaml",
                      ["crops.size=48", "model.size=48", "train.epochs=8", "train.mode=truth", "train.val_fraction=0.2"])
    result = train(cfg, root / "train", root / "train.csv", root / "truth", root / "run", root / "cell_labels.csv")
    return {"root": root, "cfg": cfg, "result": result}


def _held_out_cells(root, cfg):
    from hpa_scc.crops.cache import load_or_make_crops
    from hpa_scc.data.images import list_image_ids
    from hpa_scc.data.tables import read_cell_labels

    labels = read_cell_labels(root / "cell_labels.csv")
    crops, targets, images = [], [], []
    for image_id in list_image_ids(root / "test"):
        cut = load_or_make_crops(root / "test", root / "truth", image_id, cfg.crops, cfg.model.size, None,
                                 cfg.model.channels)
        crops.append(cut.crops)
        targets += [to_multi_hot(labels[(image_id, int(c))]) for c in cut.cell_ids]
        images += [image_id] * len(cut.cell_ids)
    return np.concatenate(crops).astype(np.float32), np.stack(targets), images


def test_model_learns_per_cell_patterns(trained):
    from hpa_scc.metrics.classification import COLLAPSE_SPREAD, macro_auc, within_image_spread
    from hpa_scc.model.classifier import load_classifier

    x, y, images = _held_out_cells(trained["root"], trained["cfg"])
    probs = np.asarray(load_classifier(trained["root"] / "run" / "model.keras").predict(x, verbose=0))
    auc = macro_auc(y, probs)
    spread = within_image_spread({(image, k): p for k, (image, p) in enumerate(zip(images, probs))})
    assert auc >= 0.9, f"held-out per-cell macro AUC {auc:.3f}"
    # A constant model has spread ~1e-6; the project calls a model collapsed below COLLAPSE_SPREAD (0.01).
    assert spread > 3 * COLLAPSE_SPREAD, f"per-cell outputs barely vary inside an image (spread {spread:.4f})"


def test_validation_metric_moves(trained):
    history = trained["result"]["history"]
    aucs = [float(row["val_auc"]) for row in history]
    assert aucs[-1] > aucs[0] + 0.05 and aucs[-1] > 0.8, aucs
