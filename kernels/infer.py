# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # hpa-scc: offline inference kernel
#
# Attach three inputs to the notebook (internet off):
# - the competition data `hpa-single-cell-image-classification` (test/, sample_submission.csv);
# - `hpa-scc-wheels`: `pip wheel` output of this project and the packages Kaggle's image lacks;
# - `hpa-scc-model`: a training run folder (model.keras, config.yaml; model.onnx for the ONNX engine);
# - optional, to segment with HPA-Cell-Segmentation (how the competition's truth was made): a dataset
#   with `dpn_unet_nuclei_v1.pth` and `dpn_unet_cell_3ch_v1.pth`, and an `hpacellseg-*.whl` (or the
#   package installed). Without them the default segmenter runs; the log says which, in one line.
#
# Paths come from `/kaggle/input` and `/kaggle/working`, or from the environment variables
# `HPA_SCC_INPUT` and `HPA_SCC_WORKING` (that is how the project's tests run this file).
# `HPA_SCC_CONFIG` names the config (default `default.yaml`, the file shipped inside the package: the
# full recipe's predict settings); `HPA_SCC_SET` holds overrides, separated by `;` (e.g.
# `predict.engine=onnx`). The crop and model settings come from the model's own config.yaml.

# %%
import os
import subprocess
import sys
from pathlib import Path

INPUT = Path(os.environ.get("HPA_SCC_INPUT", "/kaggle/input"))
WORKING = Path(os.environ.get("HPA_SCC_WORKING", "/kaggle/working"))
COMPETITION = INPUT / "hpa-single-cell-image-classification"
WHEELS = INPUT / "hpa-scc-wheels"
MODEL = INPUT / "hpa-scc-model"
CONFIG = os.environ.get("HPA_SCC_CONFIG", "default.yaml")  # a file, or a config shipped in the package
OVERRIDES = [item for item in os.environ.get("HPA_SCC_SET", "").split(";") if item.strip()]

# %% [markdown]
# ## Install the project offline

# %%
if WHEELS.is_dir():
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(WHEELS),
                    "hpa-scc"], check=True)

# %% [markdown]
# ## The segmenter: hpacellseg when its wheel (or package) and both weight files are attached
# (dataset names are free; the files are found by name, see kernels/README.md), else the default

# %%
import importlib.util

from hpa_scc.segment.hpacellseg import find_hpacellseg_inputs, segmenter_choice

found = find_hpacellseg_inputs(INPUT)
importable = importlib.util.find_spec("hpacellseg") is not None
SEGMENTER, segmenter_line = segmenter_choice(found, importable)
if SEGMENTER and not importable:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(found["wheels"]), "hpacellseg"], check=True)
print(segmenter_line)

# %% [markdown]
# ## Segment, crop and score every test cell; write the submission

# %%
from hpa_scc.core.config import load_config
from hpa_scc.predict.submit import predict_submission

cfg = load_config(CONFIG, SEGMENTER + OVERRIDES)  # the user's overrides win
print(f"config {CONFIG}, overrides {OVERRIDES}")
WORKING.mkdir(parents=True, exist_ok=True)
# allow_failures: an unreadable test image gets an empty PredictionString (listed in
# submission.failures.csv) instead of costing the whole submission.
result = predict_submission(cfg, MODEL, COMPETITION / "test", COMPETITION / "sample_submission.csv",
                            WORKING / "submission.csv", masks=WORKING / "masks", allow_failures=True)
for image_id, problem in result["failures"]:
    print(f"failed {image_id}: {problem}")
print({k: v for k, v in result.items() if k != "failures"}, f"{len(result['failures'])} of {result['images']} images failed")
