"""Batches that keep going: predict and train do every good image and name every bad one."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import SETTINGS, cli, failure_lines, synthetic_rgby, write_image

from hpa_scc.data.images import write_png


def _four_images(folder: Path) -> list[tuple[str, ...]]:
    """The issue's folder: one image missing its yellow channel, one with a truncated red PNG, one
    whose green channel is half the size, one good. Returns the failure fragments in ID order."""
    for k, image_id in enumerate(("a_noyellow", "b_truncated", "c_halfgreen", "d_good")):
        write_image(folder, image_id, synthetic_rgby(10 + k))
    (folder / "a_noyellow_yellow.png").unlink()
    red = folder / "b_truncated_red.png"
    red.write_bytes(red.read_bytes()[:300])
    write_png(folder / "c_halfgreen_green.png", np.zeros((128, 128), np.uint8))
    return [("a_noyellow", "missing yellow channel"), ("b_truncated", "b_truncated_red.png", "corrupt or truncated"),
            ("c_halfgreen", "green channel is 128x128")]


def test_predict_keeps_going_and_writes_only_when_allowed(tiny_run, tmp_path, capsys):
    from hpa_scc.submission.rows import read_submission, validate_submission

    images = tmp_path / "images"
    failed = _four_images(images)
    sample = tmp_path / "sample.csv"
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(
        f"{i},256,256,\n" for i in ("a_noyellow", "b_truncated", "c_halfgreen", "d_good", "e_absent")))
    failed.append(("e_absent", "no channel files"))
    out_csv = tmp_path / "sub.csv"
    args = ["predict", "--model", tiny_run["run"], "--images", images, "--sample", sample, "--out", out_csv,
            "--masks", tmp_path / "masks", "--quiet", *SETTINGS]
    code, _, err = cli(capsys, *args)
    assert code == 1
    failure_lines(err, 5, *failed)
    assert not out_csv.exists()  # no CSV by default ...
    journal = Path(str(out_csv) + ".journal.jsonl")
    assert '"id":"d_good"' in journal.read_text()  # ... but the good image is kept for the re-run

    code, out, err = cli(capsys, *args, "--allow-failures")
    assert code == 1 and "1 images (0 new)" not in out
    failure_lines(err, 5, *failed)
    rows = read_submission(out_csv)
    assert rows["d_good"].predictions and all(rows[f[0]].predictions == [] for f in failed)
    assert validate_submission(out_csv, sample).ok
    listed = (tmp_path / "sub.failures.csv").read_text().splitlines()
    assert listed[0] == "ID,problem" and [line.split(",")[0] for line in listed[1:]] == [f[0] for f in failed]

    write_image(images, "a_noyellow", synthetic_rgby(10))  # the fix; the re-run does only the failed images
    code, out, err = cli(capsys, *args, "--allow-failures")
    assert code == 1 and "(3 new)" in out  # a, b, c tried again; d_good comes from the journal
    failure_lines(err, 5, *failed[1:])
    assert read_submission(out_csv)["a_noyellow"].predictions

    code, _, err = cli(capsys, *args, "--fail-fast")
    assert code == 2 and "hpa-scc: error:" in err


@pytest.mark.slow
def test_train_leaves_bad_images_out_and_names_them(tiny_data, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(tiny_data / "train", images)
    ids = sorted(p.name.rsplit("_", 1)[0] for p in images.glob("*_red.png"))
    masks = tmp_path / "masks"
    code, _, _ = cli(capsys, "segment", "--images", images, "--out", masks, "--workers", 1, "--quiet")
    assert code == 0
    (images / f"{ids[1]}_blue.png").unlink()  # the crops of this image cannot be cut any more
    code, out, err = cli(capsys, "train", "--images", images, "--labels", tiny_data / "train.csv", "--masks", masks,
                         "--out", tmp_path / "run", *SETTINGS)
    assert code == 1
    failure_lines(err, len(ids), (ids[1], f"{ids[1]}_blue.png"))
    assert (tmp_path / "run" / "model.keras").is_file()  # trained on the others
