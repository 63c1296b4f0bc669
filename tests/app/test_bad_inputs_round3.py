"""The third round of bad inputs, each through the real command line: failed reruns into finished
runs, outputs naming inputs, stale or missing run files, hostile image files and senseless settings."""

import shutil

import cv2
import numpy as np
from conftest import TINY_RUN_SETTINGS
from helpers import SETTINGS, cli, one_line_error, synthetic_rgby, write_image
from PIL import Image

from hpa_scc.core.layout import CONFIG_FILE, ONNX_FILE, ONNX_INFO_FILE
from hpa_scc.data.images import CHANNELS


def _predict(tiny_run, run, out, *extra):
    data = tiny_run["data"]
    return ["predict", "--model", run, "--images", data / "test", "--sample", data / "sample_submission.csv",
            "--out", out, "--quiet", "--workers", 0, *extra]


def _copy_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run)
    return run


def test_failed_train_into_a_finished_run_changes_nothing(tiny_run, tmp_path, capsys):
    """Another crop size into a finished run: refused before anything is written; the run still predicts."""
    run = _copy_run(tiny_run, tmp_path)
    before = (run / CONFIG_FILE).read_text()
    data = tiny_run["data"]
    settings = [a for s in TINY_RUN_SETTINGS for a in ("--set", s) if not s.startswith(("crops.size", "model.size"))]
    code, _, err = cli(capsys, "train", "--images", data / "train", "--labels", data / "train.csv", "--masks",
                       tiny_run["masks"], "--out", run, *settings, "--set", "crops.size=64", "--set", "model.size=64")
    assert code != 0
    one_line_error(err, str(run), "crops.size 32 -> 64", "another --run")
    assert (run / CONFIG_FILE).read_text() == before
    assert cli(capsys, *_predict(tiny_run, run, tmp_path / "sub.csv"))[0] == 0


def test_output_never_overwrites_an_input(tiny_run, tmp_path, capsys):
    sample = tmp_path / "sample.csv"
    shutil.copy(tiny_run["data"] / "sample_submission.csv", sample)
    before = sample.read_bytes()
    data = tiny_run["data"]
    code, _, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", data / "test", "--sample", sample,
                       "--out", sample, "--quiet", "--workers", 0)
    assert code != 0
    one_line_error(err, "--out", "--sample", "overwrite")
    assert sample.read_bytes() == before


def test_missing_or_edited_run_files_are_named(tiny_run, tmp_path, capsys):
    """No config.yaml; a config.yaml whose crop size was edited; a model.onnx without its record."""
    run = _copy_run(tiny_run, tmp_path)
    (run / CONFIG_FILE).rename(tmp_path / "kept.yaml")
    code, _, err = cli(capsys, *_predict(tiny_run, run, tmp_path / "a.csv"))
    one_line_error(err, "config.yaml is missing")
    text = (tmp_path / "kept.yaml").read_text()
    (run / CONFIG_FILE).write_text(text.replace("size: 32\n  zero_background", "size: 48\n  zero_background", 1))
    code, _, err = cli(capsys, *_predict(tiny_run, run, tmp_path / "b.csv"))
    assert code != 0
    one_line_error(err, "config.yaml", "not those the model was trained with")
    (run / CONFIG_FILE).write_text(text)
    assert cli(capsys, "export", "--model", run)[0] == 0
    (run / ONNX_INFO_FILE).unlink()
    code, _, err = cli(capsys, *_predict(tiny_run, run, tmp_path / "c.csv", "--set", "predict.engine=onnx"))
    one_line_error(err, ONNX_INFO_FILE, "is missing", "export")
    assert not (tmp_path / "c.csv").exists()
    assert (run / ONNX_FILE).is_file()


def test_hostile_image_files(tmp_path, capsys):
    """A 30000² 1-bit PNG is refused from its header; a float TIFF in raw units is refused; a
    non-ASCII file name and a very long ID do not stop the others."""
    images = tmp_path / "images"
    rgby = synthetic_rgby(31)
    write_image(images, "good", rgby)
    for channel in CHANNELS:
        Image.new("1", (30000, 30000)).save(images / f"huge_{channel}.png")
        cv2.imwrite(str(images / f"raw_{channel}.tif"), (rgby[..., CHANNELS.index(channel)] * 4095).astype(np.float32))
    write_image(images, "é", rgby)
    long_id = "L" * 230
    write_image(images, long_id, rgby)
    code, _, err = cli(capsys, "segment", "--images", images, "--out", tmp_path / "masks", "--workers", 1, "--quiet")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("hpa-scc:")]
    assert any("huge" in line and "megapixels" in line for line in lines), err
    assert any("raw" in line and "outside [0, 1]" in line for line in lines), err
    assert any("é" in line and "invalid image ID" in line for line in lines), err
    assert (tmp_path / "masks" / "good_cells.png").is_file()
    assert (tmp_path / "masks" / f"{long_id}_cells.png").is_file()


def test_senseless_settings_name_their_source(tmp_path, capsys):
    for setting, fragment in (("train.learning_rate=-1", "train.learning_rate must be in (0, inf)"),
                              ("crops.padding=-2", "crops.padding must be in [0, 2]"),
                              ("train.val_fraction=1.5", "train.val_fraction must be in [0, 1)")):
        code, _, err = cli(capsys, "train", "--images", tmp_path, "--labels", tmp_path / "x.csv", "--out",
                           tmp_path / "run", "--set", setting)
        assert code != 0
        one_line_error(err, f"--set {setting}", fragment)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train:\n  learning_rate: 0\n")
    code, _, err = cli(capsys, "train", "--config", bad_yaml, "--images", tmp_path, "--labels", tmp_path / "x.csv",
                       "--out", tmp_path / "run")
    one_line_error(err, str(bad_yaml), "train.learning_rate")
    code, _, err = cli(capsys, "score", "x.csv", "--solution", "y.csv", "--iou", "1.5")
    one_line_error(err, "score.iou must be in (0, 1]")
    assert not (tmp_path / "run").exists()


def test_train_names_each_images_reason_when_none_is_usable(tiny_run, tmp_path, capsys):
    data = tiny_run["data"]
    empty_masks = tmp_path / "never_segmented"
    empty_masks.mkdir()
    code, _, err = cli(capsys, "train", "--images", data / "train", "--labels", data / "train.csv", "--masks",
                       empty_masks, "--out", tmp_path / "run", *SETTINGS)
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("hpa-scc:")]
    assert len(lines) > 2 and lines[-1].startswith("hpa-scc: ") and "images failed" in lines[-1], err
    assert not (tmp_path / "run").exists()
