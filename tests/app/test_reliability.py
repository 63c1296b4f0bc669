"""Reliability: the README's catalogue of bad inputs (each through the real CLI), interrupted jobs,
determinism, fuzzing of the parsers, and loading safety."""

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT, TINY_RUN_SETTINGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpa_scc.app.cli import main
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.errors import HpaSccError
from hpa_scc.data.images import CHANNELS, read_label_png, to_uint8, to_uint16, write_png

SETTINGS = [arg for item in TINY_RUN_SETTINGS for arg in ("--set", item)]


def cli(capsys, *args):
    """Run the real command line in-process -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("segment", "predict"))]  # bars
    assert len(lines) == 1 and lines[0].startswith("hpa-scc: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_image(folder: Path, image_id: str, rgby: np.ndarray, bits: int = 8) -> None:
    convert = to_uint16 if bits == 16 else to_uint8
    for k, channel in enumerate(CHANNELS):
        write_png(folder / f"{image_id}_{channel}.png", convert(rgby[..., k]))


def synthetic_rgby(seed: int, size: int = 256) -> np.ndarray:
    from hpa_scc.synth.draw import generate_image

    return generate_image(seed, size, SynthConfig(cells_min=6, cells_max=10)).rgby


def grid_of_cells(h: int = 1024, w: int = 768) -> np.ndarray:
    """20 x 15 = 300 small cells, each with a round nucleus."""
    rgby = np.zeros((h, w, 4), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (yy % 51) - 25, (xx % 51) - 25
    rgby[..., 2] = ((cy ** 2 + cx ** 2) < 12 ** 2) * 0.8
    rgby[..., 0] = rgby[..., 3] = ((yy % 51 > 1) & (xx % 51 > 1)) * 0.4
    return rgby


# ----------------------------------------------------------------------------- bad image files


def _break_missing(folder):
    (folder / "b_bad_yellow.png").unlink()
    return ["b_bad", "missing yellow channel"]


def _break_sizes(folder):
    write_png(folder / "b_bad_blue.png", np.zeros((256, 200), np.uint8))
    return ["b_bad", "blue channel is 200x256 but red is 256x256"]


def _break_corrupt(folder):
    (folder / "b_bad_green.png").write_bytes(b"this is not a PNG file")
    return ["b_bad", "b_bad_green.png", "not a readable image"]


def _break_truncated(folder):
    path = folder / "b_bad_red.png"
    path.write_bytes(path.read_bytes()[:300])
    return ["b_bad", "b_bad_red.png", "corrupt or truncated"]


def failure_lines(err: str, total: int, *failed: tuple[str, ...]) -> None:
    """stderr of a batch with bad images: one `failed ID: problem` line per image (each holding its
    fragments), then `N of M images failed`."""
    lines = [line for line in err.strip().splitlines() if line.startswith("hpa-scc:")]
    assert lines[-1] == f"hpa-scc: {len(failed)} of {total} images failed", err
    assert len(lines) == len(failed) + 1, err
    for line, fragments in zip(lines, failed):
        assert line.startswith(f"hpa-scc: failed {fragments[0]}: "), line
        for fragment in fragments:
            assert fragment in line, (fragment, line)


@pytest.mark.parametrize("damage", [_break_missing, _break_sizes, _break_corrupt, _break_truncated],
                         ids=["missing-channel", "channel-sizes", "corrupt-png", "truncated-png"])
def test_bad_image_file_is_named_and_the_others_are_done(tmp_path, capsys, damage):
    images = tmp_path / "images"
    write_image(images, "a_good", synthetic_rgby(1))
    write_image(images, "b_bad", synthetic_rgby(2))
    write_image(images, "c_good", synthetic_rgby(3))
    fragments = damage(images)
    code, _, err = cli(capsys, "segment", "--images", images, "--out", tmp_path / "masks", "--workers", 1, "--quiet")
    assert code == 1
    failure_lines(err, 3, tuple(fragments))
    for good in ("a_good", "c_good"):  # before and after the bad image: both done
        assert (tmp_path / "masks" / f"{good}_cells.png").is_file()
    assert not list((tmp_path / "masks").glob("b_bad*")) and not list((tmp_path / "masks").glob(".*tmp*"))

    code, _, err = cli(capsys, "segment", "--images", images, "--out", tmp_path / "fast", "--workers", 1, "--quiet",
                       "--fail-fast")
    assert code == 2
    one_line_error(err, *fragments)
    assert (tmp_path / "fast" / "a_good_cells.png").is_file() and not (tmp_path / "fast" / "c_good_cells.png").exists()


def test_odd_images_give_correct_results_end_to_end(tiny_run, tmp_path, capsys):
    """Empty image, image without nuclei, non-square image, >255 cells, 8- and 16-bit in one folder."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    odd = {
        "empty": (np.zeros((256, 256, 4), np.float32), 8),
        "no_nuclei": (np.concatenate([synthetic_rgby(3)[..., :2], np.zeros((256, 256, 1), np.float32),
                                      synthetic_rgby(3)[..., 3:]], axis=-1), 8),
        "wide": (synthetic_rgby(4, 384)[:256], 16),
        "many": (grid_of_cells(), 8),
        "same8": (synthetic_rgby(5), 8),
        "same16": (synthetic_rgby(5), 16),
    }
    for image_id, (rgby, bits) in odd.items():
        write_image(images, image_id, rgby, bits)
    grid = ["--set", "segment.nucleus_min_area=300", "--set", "segment.cell_min_area=600", "--set", "segment.scale=1.0"]
    code, out, _ = cli(capsys, "segment", "--images", images, "--out", masks, "--workers", 1, "--quiet", *grid)
    assert code == 0
    cells = {i: read_label_png(masks / f"{i}_cells.png") for i in odd}
    assert cells["empty"].max() == 0 and cells["no_nuclei"].max() == 0
    assert cells["wide"].shape == (256, 384) and cells["wide"].max() > 0
    assert cells["many"].dtype == np.uint16 and cells["many"].max() == 300
    from hpa_scc.metrics.agreement import match_cells

    tp, n8, n16 = match_cells(cells["same8"], cells["same16"])  # 16-bit rounding moves a few border pixels only
    assert tp == n8 == n16 and np.mean(cells["same8"] == cells["same16"]) > 0.99

    sample = tmp_path / "sample.csv"
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(
        f"{i},{rgby.shape[1]},{rgby.shape[0]},\n" for i, (rgby, _) in odd.items()))
    out_csv = tmp_path / "sub.csv"
    code, out, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", images, "--sample", sample,
                         "--out", out_csv, "--masks", masks, "--quiet", *SETTINGS, *grid)
    assert code == 0, err
    from hpa_scc.submission.rows import read_submission

    rows = read_submission(out_csv)
    assert rows["empty"].predictions == [] and rows["no_nuclei"].predictions == []
    assert (rows["wide"].width, rows["wide"].height) == (384, 256) and rows["wide"].predictions
    assert len({p.token for p in rows["many"].predictions}) == 300


# ----------------------------------------------------------------------------- bad tables


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


# ----------------------------------------------------------------------------- interrupted jobs


def _many_test_images(tiny_data, folder: Path, copies: int) -> Path:
    """`copies` x the tiny test set under new IDs, and their sample submission."""
    from hpa_scc.data.tables import read_sample_submission

    rows = read_sample_submission(tiny_data / "sample_submission.csv")
    lines = ["ID,ImageWidth,ImageHeight,PredictionString"]
    for k in range(copies):
        for row in rows:
            new_id = f"c{k:02d}_{row.image_id}"
            for channel in CHANNELS:
                shutil.copyfile(tiny_data / "test" / f"{row.image_id}_{channel}.png", folder / f"{new_id}_{channel}.png")
            lines.append(f"{new_id},{row.width},{row.height},")
    sample = folder.parent / "sample.csv"
    sample.write_text("\n".join(lines) + "\n")
    return sample


def _wait_for(predicate, timeout: float = 300.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_predict_killed_mid_run_resumes_to_identical_files(tiny_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    sample = _many_test_images(tiny_run["data"], images, copies=6)
    masks = tmp_path / "masks"
    slow = ["--set", "predict.batch_size=1", "--set", "predict.tta=true"]

    def command(out):
        return [sys.executable, "-m", "hpa_scc", "predict", "--model", str(tiny_run["run"]), "--images",
                str(images), "--sample", str(sample), "--out", str(out), "--masks", str(masks), "--quiet",
                *SETTINGS, *slow]

    subprocess.run(command(tmp_path / "reference.csv"), check=True, capture_output=True)
    out = tmp_path / "killed.csv"
    journal = Path(str(out) + ".journal.jsonl")
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: journal.is_file() and journal.read_bytes().count(b"\n") >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # never half-written: the CSV appears only when complete
    done_before = journal.read_bytes().count(b"\n") - 1
    rerun = subprocess.run(command(out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{18 - done_before} new" in rerun.stdout or done_before >= 18
    assert out.read_bytes() == (tmp_path / "reference.csv").read_bytes()
    assert (tmp_path / "killed.cells.csv").read_bytes() == (tmp_path / "reference.cells.csv").read_bytes()
    assert not journal.exists()


def test_train_terminated_mid_run_resumes_without_duplicates(tiny_data, tiny_run, tmp_path):
    run = tmp_path / "run"
    epochs = 4
    command = [sys.executable, "-m", "hpa_scc", "train", "--images", str(tiny_data / "train"), "--labels",
               str(tiny_data / "train.csv"), "--masks", str(tiny_run["masks"]), "--out", str(run), *SETTINGS,
               "--set", f"train.epochs={epochs}", "--set", "train.early_stopping=100"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run / "history.csv"
    assert _wait_for(lambda: history.is_file() and history.read_text().count("\n") >= 2)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = history.read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(epochs))  # each epoch once, in order
    from hpa_scc.model.classifier import load_classifier

    for name in ("model.keras", "last.keras"):
        assert load_classifier(run / name).output_shape == (None, 19)
    assert not list(run.glob(".*tmp*"))


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_data_masks_and_submission(tiny_run, tmp_path):
    from hpa_scc.core.config import load_config
    from hpa_scc.predict.submit import predict_submission
    from hpa_scc.segment.cache import segment_folder
    from hpa_scc.synth.dataset import generate_dataset

    cfg = load_config(None, TINY_RUN_SETTINGS)
    synth = SynthConfig(n_train=0, n_test=2, sizes=(256,), seed=11, workers=1)
    outputs = []
    for name in ("one", "two"):
        root = tmp_path / name
        generate_dataset(synth, root, progress=False)
        segment_folder(root / "test", root / "masks", cfg.segment, workers=1, progress=False)
        predict_submission(cfg, tiny_run["run"], root / "test", root / "sample_submission.csv", root / "sub.csv",
                           masks=root / "masks", progress=False)
        outputs.append({p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
                        if p.is_file() and p.name != "manifest.json"})
    assert outputs[0].keys() == outputs[1].keys()
    assert any(str(p).endswith("_cells.png") for p in outputs[0]) and Path("sub.csv") in outputs[0]
    for path in outputs[0]:
        assert outputs[0][path] == outputs[1][path], path


# ----------------------------------------------------------------------------- fuzzing


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(token=st.text(max_size=60), height=st.integers(0, 40), width=st.integers(0, 40))
def test_token_decoder_on_arbitrary_text(token, height, width):
    from hpa_scc.submission.encode import decode_mask

    try:
        mask = decode_mask(token, height, width)
    except HpaSccError:
        return
    assert mask.shape == (height, width)


@FUZZ
@given(token=st.binary(max_size=40).map(lambda b: __import__("base64").b64encode(__import__("zlib").compress(b)).decode()))
def test_token_decoder_on_valid_base64_zlib_of_arbitrary_bytes(token):
    from hpa_scc.submission.encode import decode_mask

    try:
        mask = decode_mask(token, 8, 6)
    except HpaSccError:
        return
    assert mask.shape == (8, 6)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("0123456789. -eE+abcxyzNn=/\t")), max_size=80))
def test_prediction_string_parser_on_arbitrary_text(text):
    from hpa_scc.submission.rows import parse_prediction_string

    try:
        predictions = parse_prediction_string(text, 8, 6)
    except HpaSccError:
        return
    assert all(0 <= p.label < 19 and 0.0 <= p.confidence <= 1.0 for p in predictions)


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)), header=st.booleans())
def test_csv_readers_on_arbitrary_bytes(tmp_path_factory, content, header):
    from hpa_scc.data.tables import read_labels, read_sample_submission
    from hpa_scc.submission.rows import read_submission

    path = tmp_path_factory.mktemp("fuzz") / "x.csv"
    path.write_bytes((b"ID,ImageWidth,ImageHeight,PredictionString\n" if header else b"") + content)
    for reader in (read_submission, read_labels, read_sample_submission):
        try:
            reader(path)
        except HpaSccError:
            pass


# ----------------------------------------------------------------------------- safety


def test_model_with_arbitrary_code_is_refused(tmp_path):
    import keras

    from hpa_scc.core.errors import InputError
    from hpa_scc.model.classifier import load_classifier

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(19)(keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(InputError, match="not a loadable Keras model"):
        load_classifier(path)


def test_source_has_no_eval_exec_or_pickle():
    pattern = re.compile(r"\b(eval|exec)\(|\bpickle\b|allow_pickle\s*=\s*True|safe_mode\s*=\s*False|yaml\.load\(|"
                         r"unsafe_load|marshal")
    offenders = [f"{path.relative_to(PROJECT)}:{n}" for path in sorted((PROJECT / "src").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), start=1) if pattern.search(line)]
    assert offenders == []


# ----------------------------------------------------------------------------- batches that keep going


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
