"""`hpa-scc prepare`: sharded crops of the training set, resumable, read by training."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.errors import InputError
from hpa_scc.crops.cut import model_crops
from hpa_scc.crops.shards import prepare_dataset, read_index
from hpa_scc.data.images import list_image_ids, read_rgby
from hpa_scc.data.tables import read_labels
from hpa_scc.segment.segmenter import segment_image

SETTINGS = ["crops.size=40", "model.size=32", "prepare.shard_images=2", "segment.workers=1", "train.epochs=1",
            "train.batch_size=16"]


def test_shards_hold_the_model_crops_of_every_image(tiny_data, tmp_path):
    cfg = load_config(None, SETTINGS)
    index = prepare_dataset(cfg, tiny_data / "train", tiny_data / "train.csv", tmp_path / "p", progress=False)
    ids = list(read_labels(tiny_data / "train.csv"))
    assert [i for s in index["shards"] for i in s["ids"]] == ids and len(index["shards"]) == 2
    assert not index["failed"]
    first = index["shards"][0]
    with np.load(tmp_path / "p" / first["file"]) as shard:
        for k, image_id in enumerate(first["ids"]):
            rgby = read_rgby(tiny_data / "train", image_id)
            expected = model_crops(rgby, segment_image(rgby, cfg.segment).cells, cfg.crops, 32, image_id)
            rows = shard["image"] == k
            np.testing.assert_array_equal(shard["crops"][rows], expected.crops)
            np.testing.assert_array_equal(shard["cell_ids"][rows], expected.cell_ids)
            assert first["cells"][k] == len(expected.cell_ids) > 0
    assert index["cells"] == sum(sum(s["cells"]) for s in index["shards"])


@pytest.mark.slow
def test_training_streams_from_the_shards(tiny_data, tmp_path):
    from hpa_scc.train.run import train

    cfg = load_config(None, SETTINGS + ["train.mode=cells", "train.val_fraction=0.25"])
    prepare_dataset(cfg, tiny_data / "train", tiny_data / "train.csv", tmp_path / "p", progress=False)
    empty = tmp_path / "no_images"
    empty.mkdir()  # no PNG is read: the image and mask folders are empty
    result = train(cfg, empty, tiny_data / "train.csv", empty, tmp_path / "run", prepared=tmp_path / "p")
    assert len(result["history"]) == 1 and (tmp_path / "run" / "model.keras").is_file()
    other = load_config(None, SETTINGS + ["model.size=48"])
    with pytest.raises(InputError, match="other settings"):
        read_index(tmp_path / "p", other)


def test_a_bad_image_is_listed_and_the_others_are_prepared(tiny_data, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(tiny_data / "train", images)
    bad = list_image_ids(images)[1]
    (images / f"{bad}_yellow.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cmd = [sys.executable, "-m", "hpa_scc", "prepare", "--images", str(images), "--labels",
           str(tiny_data / "train.csv"), "--out", str(tmp_path / "p"), "--quiet"] + \
        [arg for item in SETTINGS for arg in ("--set", item)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 1
    assert f"failed {bad}: " in done.stderr and "_yellow.png" in done.stderr
    assert "1 of 4 images failed" in done.stderr
    index = json.loads((tmp_path / "p" / "index.json").read_text())
    assert index["images"] == 3 and [f[0] for f in index["failed"]] == [bad]


@pytest.mark.slow
def test_resume_after_kill_keeps_finished_shards(tmp_path):
    """SIGKILL a real `hpa-scc prepare` of generated 2048² images after its first shard; the
    re-run leaves the finished shards untouched and completes the index."""
    from hpa_scc.synth.dataset import generate_dataset

    generate_dataset(SynthConfig(n_train=6, n_test=0, sizes=(2048,), seed=3, workers=2), tmp_path / "data", progress=False)
    out = tmp_path / "p"
    cmd = [sys.executable, "-m", "hpa_scc", "prepare", "--images", str(tmp_path / "data" / "train"), "--labels",
           str(tmp_path / "data" / "train.csv"), "--out", str(out), "--workers", "1", "--quiet",
           "--set", "prepare.shard_images=2", "--set", "model.size=32", "--set", "crops.size=32"]
    proc = subprocess.Popen(cmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("shard_*.npz")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.npz")}
    assert finished and not (out / "index.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert rerun.returncode == 0, rerun.stderr[-1000:]
    assert f"({3 - len(finished)} new)" in rerun.stdout
    assert {n: (out / n).stat().st_mtime_ns for n in finished} == finished
    index = json.loads((out / "index.json").read_text())
    assert index["images"] == 6 and len(index["shards"]) == 3 and not list(out.glob(".*.tmp*"))
