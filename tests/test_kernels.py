"""The Kaggle kernels run unchanged against a local mirror of the /kaggle/input layout."""

import os
import shutil
import subprocess
import sys

from hpa_scc.submission import validate_submission

from conftest import PROJECT


def _run_kernel(name, env_extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    return subprocess.run([sys.executable, str(PROJECT / "kernels" / name)], env=env, capture_output=True,
                          text=True, timeout=600)


def test_train_then_infer_kernels_on_a_mirrored_kaggle_input(tiny_data, tmp_path):
    competition = tmp_path / "input" / "hpa-single-cell-image-classification"
    competition.mkdir(parents=True)
    for name in ("train", "test"):
        shutil.copytree(tiny_data / name, competition / name)
    for name in ("train.csv", "sample_submission.csv"):
        shutil.copyfile(tiny_data / name, competition / name)
    (tmp_path / "input" / "hpa-scc-wheels").mkdir()  # pip finds hpa-scc already installed
    settings = "crops.size=32;model.size=32;train.epochs=1;train.batch_size=16;segment.workers=1;predict.workers=0"
    env = {"HPA_SCC_INPUT": str(tmp_path / "input"), "HPA_SCC_SET": settings, "HPA_SCC_EXPORT_ONNX": "0"}

    trained = _run_kernel("train.py", {**env, "HPA_SCC_WORKING": str(tmp_path / "train_working")})
    assert trained.returncode == 0, trained.stderr[-2000:]
    shutil.copytree(tmp_path / "train_working" / "run", tmp_path / "input" / "hpa-scc-model")

    inferred = _run_kernel("infer.py", {**env, "HPA_SCC_WORKING": str(tmp_path / "working")})
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    submission = tmp_path / "working" / "submission.csv"
    report = validate_submission(submission, competition / "sample_submission.csv")
    assert report.ok, report.errors[:3]
    assert (tmp_path / "working" / "submission.cells.csv").is_file()
