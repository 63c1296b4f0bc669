"""The Kaggle kernels run unchanged against a local mirror of the /kaggle/input layout."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT

from hpa_scc.core.config import load_config
from hpa_scc.submission.rows import validate_submission

pytestmark = pytest.mark.slow  # both kernels end to end


def _run_kernel(name, env_extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    return subprocess.run([sys.executable, str(PROJECT / "kernels" / name)], env=env, capture_output=True,
                          text=True, timeout=600)


def _mirror_real_input(real, root):
    """/kaggle/input from the real HPA images: train/ and test/ both hold them (2048² and 3072²),
    train.csv their weak labels, sample_submission.csv lists them with their true sizes."""
    from hpa_scc.data.images import image_size, list_image_ids
    from hpa_scc.submission.encode import empty_mask_token

    competition = root / "input" / "hpa-single-cell-image-classification"
    for split in ("train", "test"):
        (competition / split).mkdir(parents=True)
        for path in (real / "images").glob("*.png"):
            os.symlink(path, competition / split / path.name)
    shutil.copyfile(real / "labels.csv", competition / "train.csv")
    rows = []
    for image_id in list_image_ids(real / "images"):
        height, width = image_size(real / "images", image_id)
        rows.append(f"{image_id},{width},{height},0 1 {empty_mask_token(height, width)}\n")
    (competition / "sample_submission.csv").write_text("ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(rows))
    (root / "input" / "hpa-scc-wheels").mkdir()  # pip finds hpa-scc already installed
    return competition


def test_train_then_infer_kernels_on_real_images_with_the_default_config(real_data, tmp_path):
    """Both kernels unchanged, on configs/default.yaml (shipped in the package) shrunk only by
    overrides; the submission validates against the real images' sizes."""
    competition = _mirror_real_input(real_data, tmp_path)
    settings = "crops.size=32;model.size=32;train.epochs=1;train.batch_size=16;segment.workers=1;predict.workers=0"
    env = {"HPA_SCC_INPUT": str(tmp_path / "input"), "HPA_SCC_SET": settings, "HPA_SCC_EXPORT_ONNX": "0"}

    trained = _run_kernel("train.py", {**env, "HPA_SCC_WORKING": str(tmp_path / "train_working")})
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "config default.yaml" in trained.stdout
    run_config = load_config(tmp_path / "train_working" / "run" / "config.yaml")
    shipped = load_config("default.yaml")
    assert run_config.train.mode == shipped.train.mode and run_config.train.loss == shipped.train.loss
    assert run_config.model.size == 32 and run_config.train.epochs == 1  # the overrides, nothing else
    shutil.copytree(tmp_path / "train_working" / "run", tmp_path / "input" / "hpa-scc-model")

    inferred = _run_kernel("infer.py", {**env, "HPA_SCC_WORKING": str(tmp_path / "working")})
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    assert "segmenter: the default (the shipped U-Net); hpacellseg not used: missing dpn_unet_nuclei_v1.pth" in inferred.stdout
    submission = tmp_path / "working" / "submission.csv"
    report = validate_submission(submission, competition / "sample_submission.csv")
    assert report.ok, report.errors[:3]
    from hpa_scc.data.images import image_size

    sizes = {row.split(",")[0]: tuple(map(int, row.split(",")[1:3])) for row in submission.read_text().splitlines()[1:]}
    assert sizes == {i: image_size(real_data / "images", i)[::-1] for i in sizes} and len(sizes) == 7
    assert {3072, 2048} == {w for w, _ in sizes.values()}
    assert (tmp_path / "working" / "submission.cells.csv").is_file()
