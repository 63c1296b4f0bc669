"""More bad inputs, each through the real command line: odd channel files, tiny and saturated
images, NaN pixels, CSV dialects, bad IDs, corrupt caches, read-only folders and a full disk."""

import errno
import shutil

import cv2
import numpy as np
import pytest
from helpers import SETTINGS, cli, failure_lines, one_line_error, synthetic_rgby, write_image

from hpa_scc.data.images import CHANNELS, read_label_png, to_uint8, write_png
from hpa_scc.submission.rows import read_submission, validate_submission


def _write_colour(path, plane: np.ndarray, kind: str) -> None:
    """A grey plane saved as RGB, RGBA or palette PNG (or, `colour`, an RGB whose planes differ)."""
    from PIL import Image

    if kind == "rgb":
        Image.fromarray(np.stack([plane] * 3, -1)).save(path)
    elif kind == "rgba":
        Image.fromarray(np.stack([plane] * 3 + [np.full_like(plane, 255)], -1)).save(path)
    elif kind == "palette":
        Image.fromarray(plane).convert("P").save(path)
    else:
        Image.fromarray(np.stack([plane, plane // 2, plane], -1)).save(path)


def test_channels_saved_as_rgb_rgba_or_palette(tmp_path, capsys):
    """A grey plane saved as RGB, RGBA or palette PNG is read as that plane (same masks as the
    plain file); a colour image whose planes differ is refused, naming the file."""
    rgby = synthetic_rgby(21)
    plain, odd = tmp_path / "plain", tmp_path / "odd"
    write_image(plain, "x", rgby)
    write_image(odd, "x", rgby)
    for channel, kind in zip(("red", "blue", "yellow"), ("rgb", "palette", "rgba")):
        _write_colour(odd / f"x_{channel}.png", to_uint8(rgby[..., CHANNELS.index(channel)]), kind)
    write_image(odd, "y", rgby)
    _write_colour(odd / "y_green.png", to_uint8(rgby[..., 1]), "colour")
    assert cli(capsys, "segment", "--images", plain, "--out", tmp_path / "m1", "--workers", 1, "--quiet")[0] == 0
    code, _, err = cli(capsys, "segment", "--images", odd, "--out", tmp_path / "m2", "--workers", 1, "--quiet")
    assert code == 1
    failure_lines(err, 2, ("y", "y_green.png", "colour image whose planes differ"))
    np.testing.assert_array_equal(read_label_png(tmp_path / "m1" / "x_cells.png"),
                                  read_label_png(tmp_path / "m2" / "x_cells.png"))


def test_tiny_saturated_and_nan_images(tiny_run, tmp_path, capsys):
    """1x1 and 16x16 images and a 16-bit image with every pixel at 65535 give 0 cells and a valid
    row of the right size; a float TIFF with NaN is refused, naming the file."""
    images = tmp_path / "images"
    write_image(images, "one", np.full((1, 1, 4), 0.5, np.float32))
    write_image(images, "sixteen", synthetic_rgby(22, 256)[120:136, 120:136])
    for channel in CHANNELS:
        write_png(images / f"white_{channel}.png", np.full((64, 64), 65535, np.uint16))
        plane = np.full((32, 32), 0.5, np.float32)
        if channel == "green":
            plane[5, 5] = np.nan
        cv2.imwrite(str(images / f"nan_{channel}.tif"), plane)
    sizes = {"one": 1, "sixteen": 16, "white": 64, "nan": 32}
    sample = tmp_path / "sample.csv"
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(f"{i},{s},{s},\n" for i, s in sizes.items()))
    out = tmp_path / "sub.csv"
    code, _, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", images, "--sample", sample, "--out", out,
                       "--masks", tmp_path / "masks", "--quiet", "--allow-failures", *SETTINGS)
    assert code == 1
    failure_lines(err, 4, ("nan", "nan_green.tif", "NaN"))
    rows = read_submission(out)
    assert {i: (r.width, r.height) for i, r in rows.items()} == {i: (s, s) for i, s in sizes.items()}
    assert rows["one"].predictions == [] and rows["white"].predictions == []
    assert validate_submission(out, sample).ok


def test_csv_dialects_are_read_alike(tiny_data, tmp_path, capsys):
    """UTF-8 byte-order mark, CRLF line ends, quoted fields and trailing spaces in IDs and labels:
    train.csv, the sample submission and a submission read the same as the plain files."""
    from hpa_scc.data.tables import read_labels, read_sample_submission

    def dialect(text: str) -> bytes:
        lines = text.strip("\n").split("\n")
        head, rows = lines[0], [",".join(f'"{f} "' if k < 2 else f for k, f in enumerate(line.split(",", 3)))
                                for line in lines[1:]]
        return "\ufeff".encode() + "\r\n".join([head] + rows).encode() + b"\r\n"

    for name, reader in (("train.csv", read_labels), ("sample_submission.csv", read_sample_submission),
                         ("solution.csv", read_submission)):
        odd = tmp_path / name
        odd.write_bytes(dialect((tiny_data / name).read_text()))
        assert reader(odd) == reader(tiny_data / name) if name != "solution.csv" else \
            {i: r.predictions for i, r in reader(odd).items()} == {i: r.predictions for i, r in reader(tiny_data / name).items()}
    code, out, _ = cli(capsys, "segment", "--images", tiny_data / "train", "--ids", tmp_path / "train.csv",
                       "--out", tmp_path / "masks", "--workers", 1, "--quiet")
    assert code == 0 and "segmented 4 new image(s)" in out
    code, out, _ = cli(capsys, "validate", tmp_path / "solution.csv", "--sample", tmp_path / "sample_submission.csv")
    assert code == 0, out


@pytest.mark.parametrize("text, fragments", [
    ("ID,ImageWidth,ImageHeight,PredictionString\na,8,8,\nb,8,8,\na,8,8,\n", ["row 4", "duplicate ID a"]),
    ("ID,ImageWidth,ImageHeight,PredictionString\nan id,8,8,\n", ["row 2", "'an id'", "only letters"]),
])
def test_sample_with_duplicate_ids_or_an_id_with_a_space(tiny_run, tmp_path, capsys, text, fragments):
    sample = tmp_path / "sample.csv"
    sample.write_text(text)
    code, _, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", tiny_run["data"] / "test",
                       "--sample", sample, "--out", tmp_path / "s.csv", "--quiet", *SETTINGS)
    assert code == 2
    one_line_error(err, str(sample), *fragments)


def test_corrupt_cached_mask_is_rebuilt_with_a_warning(tiny_run, tmp_path, capsys):
    masks = tmp_path / "masks"
    shutil.copytree(tiny_run["masks"], masks)
    data = tiny_run["data"]
    image_id = data.joinpath("sample_submission.csv").read_text().splitlines()[1].split(",")[0]
    good = read_label_png(masks / f"{image_id}_cells.png")
    (masks / f"{image_id}_cells.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(UserWarning, match=f"{image_id}_cells.png is unreadable.*segmenting image {image_id} again"):
        code, _, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", data / "test", "--sample",
                           data / "sample_submission.csv", "--out", tmp_path / "s.csv", "--masks", masks, "--quiet",
                           *SETTINGS)
    assert code == 0, err
    np.testing.assert_array_equal(read_label_png(masks / f"{image_id}_cells.png"), good)


def _predict_args(tiny_run, out):
    data = tiny_run["data"]
    return ["predict", "--model", tiny_run["run"], "--images", data / "test", "--sample", data / "sample_submission.csv",
            "--out", out, "--masks", tiny_run["masks"], "--quiet", *SETTINGS]


def test_read_only_output_folder(tiny_run, tmp_path, capsys, monkeypatch):
    """Writing into a folder the user may not write to: one line naming the path; nothing half-written.
    (Simulated: this suite may run as root, whom permissions do not stop.)"""
    import tempfile

    out = tmp_path / "readonly" / "sub.csv"
    out.parent.mkdir()
    out.write_text("old submission\n")

    real_mkstemp = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if str(dir) == str(out.parent):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = cli(capsys, *_predict_args(tiny_run, out))
    assert code == 2
    one_line_error(err, str(out.parent), "Permission denied")
    assert out.read_text() == "old submission\n"


def test_full_disk_while_writing_keeps_the_old_output(tiny_run, tmp_path, capsys, monkeypatch):
    """The disk fills while the submission is written: the temp file is removed, the old
    submission kept, the journal kept (a re-run after freeing space writes it)."""
    import csv

    out = tmp_path / "sub.csv"
    out.write_text("old submission\n")
    real_writer = csv.writer

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.inner, self.rows = real_writer(*args, **kwargs), 0

        def writerow(self, row):
            self.rows += 1
            if self.rows > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.writerow(row)

    monkeypatch.setattr(csv, "writer", FullDisk)
    code, _, err = cli(capsys, *_predict_args(tiny_run, out))
    assert code == 2
    one_line_error(err, "No space left on device")
    assert out.read_text() == "old submission\n" and not list(tmp_path.glob(".sub.csv*tmp*"))
    monkeypatch.setattr(csv, "writer", real_writer)
    code, stdout, _ = cli(capsys, *_predict_args(tiny_run, out))
    assert code == 0 and "(0 new)" in stdout  # every image came from the journal
    assert validate_submission(out, tiny_run["data"] / "sample_submission.csv").ok
