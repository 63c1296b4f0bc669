"""Interrupted jobs (real subprocesses killed) resume to identical files; the same seed gives the same bytes."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_RUN_SETTINGS
from helpers import SETTINGS

from hpa_scc.core.config_images import SynthConfig
from hpa_scc.data.images import CHANNELS

pytestmark = pytest.mark.slow  # real subprocesses killed and resumed


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

# determinism


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
