"""Model, crops and training. Builds real EfficientNetB0 models (weights=None) and trains them
for a few steps on tiny synthetic data, so this module takes a few minutes on 2 cores."""

import json

import numpy as np
import pytest

from hpa_scc.core.classes import NEGATIVE, to_multi_hot
from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import CropConfig
from hpa_scc.core.config_learning import ModelConfig
from hpa_scc.core.errors import InputError
from hpa_scc.crops.cut import cell_crops
from hpa_scc.train.examples import Example, split_by_image
from hpa_scc.train.pseudo import pseudo_labels


@pytest.mark.parametrize("backbone, channels", [("keras", 4), ("keras", 3), ("efficientnet", 4)])
def test_model_shapes(backbone, channels):
    from hpa_scc.model.classifier import build_classifier

    model = build_classifier(ModelConfig(backbone=backbone, channels=channels, size=64))
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, channels)).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 19) and np.all((y > 0) & (y < 1))


@pytest.mark.slow
def test_missing_weights_and_bad_model_file(tmp_path):
    from hpa_scc.model.classifier import build_classifier, load_classifier

    with pytest.raises(InputError, match="does not exist"):
        build_classifier(ModelConfig(size=64, weights=str(tmp_path / "none.h5")))
    bogus = tmp_path / "model.keras"
    bogus.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a loadable Keras model"):
        load_classifier(bogus)


def test_local_weights_transfer_to_four_channels(tmp_path):
    import keras

    from hpa_scc.model.classifier import build_classifier

    rgb = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "b0.weights.h5"
    rgb.save_weights(str(path))
    model = build_classifier(ModelConfig(size=64, channels=4, weights=str(path)))
    stem = model.get_layer("efficientnetb0").get_layer("stem_conv").get_weights()[0]
    source = rgb.get_layer("stem_conv").get_weights()[0]
    assert stem.shape[2] == 4
    np.testing.assert_allclose(stem[:, :, :3], source)
    np.testing.assert_allclose(stem[:, :, 3], source.mean(axis=2), rtol=1e-6)


def test_crops_of_known_mask():
    rgby = np.zeros((100, 120, 4), np.float32)
    cells = np.zeros((100, 120), np.uint16)
    cells[10:30, 20:60] = 1  # 20 x 40 box
    cells[50:90, 70:110] = 2
    rgby[..., 1] = 0.5
    crops = cell_crops(rgby, cells, CropConfig(size=32, padding=0.0, zero_background=True))
    assert crops.crops.shape == (2, 32, 32, 4) and crops.crops.dtype == np.uint8
    assert list(crops.cell_ids) == [1, 2]
    assert tuple(crops.boxes[0]) == (10, 20, 30, 60)
    first = crops.crops[0, ..., 1]
    assert first[16, 16] == 128 and first[0, 16] == 0  # square box: rows above the 20-px cell are background
    unmasked = cell_crops(rgby, cells, CropConfig(size=32, padding=0.0, zero_background=False))
    assert unmasked.crops[0, 0, 16, 1] == 128


def test_pseudo_labels_hand_case():
    examples = [Example("a", 0, to_multi_hot([0, 5])), Example("a", 1, to_multi_hot([0, 5])), Example("b", 0, to_multi_hot([2]))]
    scores = np.zeros((3, 19), np.float32)
    scores[0, [0, 5]] = [0.9, 0.1]  # keeps 0; 5 below the minimum
    scores[1, [0, 5]] = [0.2, 0.8]  # 0 below half of the image's best (0.9); keeps 5
    scores[2, 2] = 0.05  # nothing supported -> Negative
    out = pseudo_labels(examples, scores, keep=0.5, minimum=0.2)
    assert np.flatnonzero(out[0].target).tolist() == [0]
    assert np.flatnonzero(out[1].target).tolist() == [5]
    assert np.flatnonzero(out[2].target).tolist() == [NEGATIVE]


def test_split_by_image_is_disjoint():
    labels = {f"id{i}": ((i % 3,) if i % 5 else (7,)) for i in range(20)}
    train, val = split_by_image(labels, 0.25, 0)
    assert len(val) == 5 and not set(train) & set(val) and set(train) | set(val) == set(labels)


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    from hpa_scc.segment.cache import segment_folder
    from hpa_scc.synth.dataset import generate_dataset

    cfg = load_config(None, ["synth.n_train=6", "synth.n_test=0", "synth.sizes=[256]", "synth.workers=1", "synth.seed=3"])
    root = tmp_path_factory.mktemp("train")
    generate_dataset(cfg.synth, root, progress=False)
    segment_folder(root / "train", root / "masks", cfg.segment, workers=1, progress=False)
    return root


TINY = ["crops.size=48", "model.size=48", "train.batch_size=16", "train.epochs=2", "train.augment.enabled=true"]


@pytest.mark.slow
def test_training_writes_outputs_loss_goes_down_and_resumes(train_data, tmp_path):
    from hpa_scc.app.cli import main

    run = tmp_path / "run"
    args = ["train", "--images", str(train_data / "train"), "--labels", str(train_data / "train.csv"),
            "--masks", str(train_data / "masks"), "--out", str(run), "--pseudo-rounds", "1"]
    for item in TINY + ["train.learning_rate=0.003"]:
        args += ["--set", item]
    assert main(args) == 0
    for name in ("model.keras", "config.yaml", "history.csv", "curves.png", "val_per_class.csv", "last.keras"):
        assert (run / name).is_file(), name
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # two rounds of two epochs
    losses = [float(r.split(",")[rows[0].split(",").index("loss")]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    state = json.loads((run / "state.json").read_text())
    assert (state["round"], state["epoch"]) == (2, 0) and state["best"] < 1.0
    # Re-running into the same folder resumes: nothing left to do, no epoch added.
    assert main(args) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 5


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["image", "truth"])
def test_other_modes(train_data, tmp_path, mode):
    from hpa_scc.train.run import train

    cfg = load_config(None, TINY + [f"train.mode={mode}", "train.epochs=1", "train.augment.enabled=false"])
    result = train(cfg, train_data / "train", train_data / "train.csv", train_data / "masks", tmp_path / mode,
                   train_data / "cell_labels.csv" if mode == "truth" else None)
    assert len(result["history"]) == 1 and (tmp_path / mode / "model.keras").is_file()


@pytest.mark.slow
def test_mil_trains_the_per_cell_classifier(train_data, tmp_path):
    """mode mil: bags of cells, pooled outputs; model.keras is the per-cell classifier (19 outputs)."""
    from hpa_scc.model.classifier import load_classifier
    from hpa_scc.train.run import train

    for pooling in ("lse", "attention"):
        cfg = load_config(None, TINY + ["train.mode=mil", "train.epochs=1", "train.mil_bag_size=4",
                                        f"train.mil_pooling={pooling}"])
        run = tmp_path / pooling
        result = train(cfg, train_data / "train", train_data / "train.csv", train_data / "masks", run)
        assert len(result["history"]) == 1 and {"image_loss", "cells_loss", "val_auc"} <= set(result["history"][0])
        model = load_classifier(run / "model.keras")
        assert model.input_shape[1:] == (48, 48, 4) and model.output_shape[1:] == (19,)


def test_bag_dataset_yields_the_batches_it_promises(train_data):
    from hpa_scc.data.tables import read_labels
    from hpa_scc.train.datasets import bag_steps, make_bag_dataset
    from hpa_scc.train.examples import make_examples
    from hpa_scc.train.sources import CropSource

    cfg = load_config(None, TINY + ["train.mode=mil", "train.mil_bag_size=4", "train.batch_size=8"])
    masks = train_data / "masks"
    examples = make_examples(cfg, train_data / "train", read_labels(train_data / "train.csv"), masks, cache=masks / "crops")
    batches = list(make_bag_dataset(examples, CropSource(cfg, train_data / "train", masks, masks / "crops"), cfg))
    assert len(batches) == bag_steps(examples, cfg)
    x, y = batches[0]
    assert tuple(x.shape[1:]) == (4, 48, 48, 4) and tuple(y["cells"].shape[1:]) == (4, 19)


def test_bag_pooling_arithmetic():
    from hpa_scc.model.classifier import build_classifier
    from hpa_scc.model.layers import BagModel

    classifier = build_classifier(load_config(None, ["model.size=32"]).model)
    cells = np.array([[[0.9] + [0.1] * 18, [0.1] * 19, [0.1] * 19]], np.float32)  # 1 bag x 3 cells x 19
    pooled = {name: np.asarray(BagModel(classifier, name, 5.0).pool(cells, None))[0]
              for name in ("mean", "max", "lse")}
    np.testing.assert_allclose(pooled["mean"][0], (0.9 + 0.1 + 0.1) / 3, rtol=1e-5)
    np.testing.assert_allclose(pooled["max"][0], 0.9, rtol=1e-5)
    assert pooled["mean"][0] < pooled["lse"][0] < pooled["max"][0]  # log-sum-exp lies between
    np.testing.assert_allclose(pooled["lse"][1:], 0.1, rtol=1e-4)  # equal cells pool to themselves


@pytest.mark.slow
def test_out_of_fold_labels_never_come_from_a_model_that_saw_the_image(train_data, tmp_path):
    from hpa_scc.data.tables import read_cell_labels, read_labels
    from hpa_scc.train.run import train

    cfg = load_config(None, TINY + ["train.epochs=1", "train.pseudo_rounds=1", "train.pseudo_folds=2",
                                    "train.pseudo_min=0.0", "train.augment.enabled=false"])
    run = tmp_path / "oof"
    train(cfg, train_data / "train", train_data / "train.csv", train_data / "masks", run)
    labels = read_labels(train_data / "train.csv")
    table = read_cell_labels(run / "oof" / "r1_cell_labels.csv")
    assert {image for image, _ in table} == set(labels)  # every image relabelled once
    for (image, _), cell_labels in table.items():  # a kept label is one of the image's labels
        assert set(cell_labels) <= set(labels[image]) | {18}
    for fold in (0, 1):
        trained_on = set(read_labels(run / "oof" / f"r1_f{fold}.labels.csv"))
        held_out = set(labels) - trained_on
        assert held_out and trained_on and not held_out & trained_on
    assert (run / "model.keras").is_file() and "mode: truth" in (run / "config.yaml").read_text()


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hpa_scc.core.config import load_config
from hpa_scc.train.run import train
root, run = sys.argv[1], sys.argv[2]
cfg = load_config(None, sys.argv[3:])
result = train(cfg, f"{root}/train", f"{root}/train.csv", f"{root}/masks", run)
print("epochs", len(result["history"]))
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(train_data, tmp_path):
    """The multi-device path for real: MirroredStrategy with two logical CPU devices (a subprocess,
    because logical devices must be configured before TensorFlow starts)."""
    import subprocess
    import sys

    overrides = TINY + ["train.epochs=1", "train.strategy=mirrored", "train.augment.enabled=false"]
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(train_data), str(tmp_path / "run"), *overrides],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "strategy mirrored: 2 replica(s)" in out.stdout
    assert "epochs 1" in out.stdout and (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_ensemble_averages_its_members_and_resumes(train_data, tmp_path):
    """train.members 2: two trainings of seeds 0 and 1 in RUN/members, RUN/model.keras their mean
    (through the ONNX export too); a rerun trains nothing and keeps the averaged model."""
    from hpa_scc.model.classifier import load_classifier
    from hpa_scc.model.export import export_onnx
    from hpa_scc.train.run import train

    cfg = load_config(None, TINY + ["train.epochs=1", "train.members=2", "train.augment.enabled=false"])
    run = tmp_path / "ensemble"
    result = train(cfg, train_data / "train", train_data / "train.csv", train_data / "masks", run)
    assert len(result["members"]) == 2
    members = [run / "members" / f"m{i}" for i in (0, 1)]
    assert [load_config(m / "config.yaml").train.seed for m in members] == [0, 1]
    assert all(load_config(m / "config.yaml").train.members == 1 for m in members)
    crops = np.random.default_rng(0).uniform(0, 255, (6, 48, 48, 4)).astype(np.float32)
    outputs = [np.asarray(load_classifier(m / "model.keras")(crops, training=False)) for m in members]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # two different models, not one twice
    averaged = np.asarray(load_classifier(run / "model.keras")(crops, training=False))
    np.testing.assert_allclose(averaged, (outputs[0] + outputs[1]) / 2, atol=1e-5)
    assert export_onnx(run)["max_abs_diff"] < 1e-3
    built = (run / "model.keras").stat().st_mtime
    train(cfg, train_data / "train", train_data / "train.csv", train_data / "masks", run)
    assert (run / "model.keras").stat().st_mtime == built
    assert len((members[1] / "history.csv").read_text().splitlines()) == 2
