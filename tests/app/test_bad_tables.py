"""Bad tables, models and configs through the real CLI: one line naming the file, row or key."""

import shutil

import pytest
from helpers import SETTINGS, cli, failure_lines, one_line_error


@pytest.mark.parametrize("text, fragments", [
    ("ID,Label\na,19\n", ["row 2", "19"]),
    ("ID,Label\na,\n", ["row 2", "empty"]),
    ("ID,Label\na,1\na,2\n", ["row 3", "duplicate ID a"]),
    ("ID\na\n", ["missing column 'Label'"]),
    ("ID,Label\n../etc,1\n", ["row 2", "../etc"]),
    ("ID,Label\nx/y,1\n", ["row 2", "x/y"]),
], ids=["unknown-label", "empty-label", "duplicate-id", "missing-column", "dotdot-id", "slash-id"])
def test_bad_train_csv_names_the_row(tmp_path, capsys, text, fragments):
    labels = tmp_path / "train.csv"
    labels.write_text(text)
    (tmp_path / "images").mkdir()
    code, _, err = cli(capsys, "segment", "--images", tmp_path / "images", "--out", tmp_path / "m", "--ids", labels)
    assert code == 2
    one_line_error(err, str(labels), *fragments)


def test_train_command_reports_a_bad_label_too(tiny_data, tmp_path, capsys):
    labels = tmp_path / "train.csv"
    labels.write_text("ID,Label\nabc,0|42\n")
    code, _, err = cli(capsys, "train", "--images", tiny_data / "train", "--labels", labels, "--masks", tmp_path,
                       "--out", tmp_path / "run", *SETTINGS)
    assert code == 2
    one_line_error(err, str(labels), "row 2", "42")


def test_sample_with_unknown_or_unsafe_ids(tiny_run, tmp_path, capsys):
    data = tiny_run["data"]
    sample = tmp_path / "sample.csv"
    sample.write_text((data / "sample_submission.csv").read_text() + "ghost,256,256,\n")
    args = ["predict", "--model", tiny_run["run"], "--images", data / "test", "--sample", sample,
            "--out", tmp_path / "s.csv", "--quiet", *SETTINGS]
    code, _, err = cli(capsys, *args)
    assert code == 1  # the other images are done; the ghost is named
    n_rows = len((data / "sample_submission.csv").read_text().splitlines())
    failure_lines(err, n_rows, ("ghost", str(data / "test")))
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\n../../etc/passwd,256,256,\n")
    code, _, err = cli(capsys, *args)
    assert code == 2
    one_line_error(err, "row 2", "../../etc/passwd")
    assert not (tmp_path / "s.csv").exists()


def test_malformed_submission_rows(tiny_data, tmp_path, capsys):
    """Every data row malformed: validate names each by row and ID and counts what it read; score
    stops at the first, naming its row and ID."""
    sub = tmp_path / "sub.csv"
    lines = (tiny_data / "solution.csv").read_text().splitlines()
    ids = [line.split(",")[0] for line in lines[1:]]
    lines[1] = lines[1].rsplit(" ", 1)[0]  # a triple loses its mask
    lines[2] = lines[2].replace(",", ",x", 1)  # width is not a number
    lines[3] = lines[3] + ",extra"  # five columns
    sub.write_text("\n".join(lines) + "\n")
    code, out, err = cli(capsys, "validate", sub, "--sample", tiny_data / "sample_submission.csv")
    assert code == 1 and "INVALID" in out
    assert "rows 3 read (3 malformed), valid images 0" in out
    for row, image_id in zip((2, 3, 4), ids):
        assert f"row {row} (ID {image_id}):" in err
    code, _, err = cli(capsys, "score", sub, "--solution", tiny_data / "solution.csv")
    assert code == 2
    one_line_error(err, f"row 2 (ID {ids[0]})")
    code, out, _ = cli(capsys, "score", tiny_data / "solution.csv", "--solution", tiny_data / "solution.csv")
    assert code == 0 and f"scored {len(ids)} image(s)" in out and "mAP 1.0" in out


def test_model_file_that_is_not_a_model(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run)
    (run / "model.keras").write_bytes(b"PK\x03\x04 definitely not a keras archive")
    data = tiny_run["data"]
    code, _, err = cli(capsys, "predict", "--model", run, "--images", data / "test", "--sample",
                       data / "sample_submission.csv", "--out", tmp_path / "s.csv", "--quiet", *SETTINGS)
    assert code == 2
    one_line_error(err, str(run / "model.keras"), "not a loadable Keras model")
    code, _, err = cli(capsys, "export", "--model", run)
    assert code == 2
    one_line_error(err, "not a loadable Keras model")


@pytest.mark.parametrize("command", [["segment", "--images", ".", "--out", "m"], ["train", "--images", ".", "--labels",
                                     "x.csv", "--masks", ".", "--out", "r"], ["demo"]])
def test_config_typo_names_the_key(tmp_path, capsys, command):
    config = tmp_path / "typo.yaml"
    config.write_text("predict:\n  cell_wieght: 0.5\n")
    code, _, err = cli(capsys, *command, "--config", config)
    assert code == 2
    one_line_error(err, str(config), "predict.cell_wieght", "cell_weight")
