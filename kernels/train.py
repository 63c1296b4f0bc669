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
# # hpa-scc: training kernel (GPU)
#
# Attach the competition data `hpa-single-cell-image-classification` and `hpa-scc-wheels`
# (see infer.py). The run folder written to `/kaggle/working/run` becomes the `hpa-scc-model`
# dataset of the inference kernel.
#
# Environment variables (all optional): `HPA_SCC_INPUT`, `HPA_SCC_WORKING` (paths),
# `HPA_SCC_CONFIG` (the config: a file, or a name shipped in the package; default `default.yaml`,
# the full GPU recipe), `HPA_SCC_SET` (config overrides separated by `;`), `HPA_SCC_LIMIT` (train on the first N
# images only), `HPA_SCC_EXPORT_ONNX` (1 = also export model.onnx for CPU inference; default 1).

# %%
import os
import subprocess
import sys
from pathlib import Path

INPUT = Path(os.environ.get("HPA_SCC_INPUT", "/kaggle/input"))
WORKING = Path(os.environ.get("HPA_SCC_WORKING", "/kaggle/working"))
COMPETITION = INPUT / "hpa-single-cell-image-classification"
WHEELS = INPUT / "hpa-scc-wheels"
CONFIG = os.environ.get("HPA_SCC_CONFIG", "default.yaml")  # a file, or a config shipped in the package
OVERRIDES = [item for item in os.environ.get("HPA_SCC_SET", "").split(";") if item.strip()]
LIMIT = int(os.environ.get("HPA_SCC_LIMIT", "0"))
EXPORT_ONNX = os.environ.get("HPA_SCC_EXPORT_ONNX", "1") == "1"

# %%
if WHEELS.is_dir():
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(WHEELS),
                    "hpa-scc"], check=True)

# %% [markdown]
# ## Segment the training images (cached in /kaggle/working/masks; a restarted kernel resumes)

# %%
from hpa_scc.core.config import load_config
from hpa_scc.core.files import atomic_write_text
from hpa_scc.data.tables import read_labels
from hpa_scc.segment.cache import segment_folder

cfg = load_config(CONFIG, OVERRIDES)
print(f"config {CONFIG}, overrides {OVERRIDES}")
labels = read_labels(COMPETITION / "train.csv")
ids = list(labels)[:LIMIT] if LIMIT else list(labels)
labels_csv = WORKING / "train_subset.csv"
atomic_write_text(labels_csv, "ID,Label\n" + "".join(f"{i},{'|'.join(map(str, labels[i]))}\n" for i in ids))
from hpa_scc.core.errors import BatchFailures

try:
    segment_folder(COMPETITION / "train", WORKING / "masks", cfg.segment, ids=ids)
except BatchFailures as failed:  # the other images are segmented; training leaves these out
    print("\n".join(failed.lines()))

# %% [markdown]
# ## Train on the weak image-level labels (re-running resumes from last.keras)

# %%
from hpa_scc.train.run import train

try:
    result = train(cfg, COMPETITION / "train", labels_csv, WORKING / "masks", WORKING / "run")
    print(result["history"][-1] if result["history"] else "no epochs run")
except BatchFailures as failed:  # trained and saved without the images that could not be read
    print("\n".join(failed.lines()))

# %%
if EXPORT_ONNX:
    from hpa_scc.model.export import export_onnx

    print(export_onnx(WORKING / "run"))
