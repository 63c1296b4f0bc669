"""Every file name of the data, mask, crop, run, prepared and submission folders: one owner each.

Data folder (Kaggle layout; `hpa-scc synth` also writes the truth the competition hides):
    train/, test/ {ID}_{red,green,blue,yellow}.png, train.csv, sample_submission.csv,
    truth/{ID}_cells.png, {ID}_nuclei.png, cell_labels.csv, solution.csv, manifest.json
Mask folder: {ID}_cells.png, {ID}_nuclei.png, segment_manifest.json, crops/TAG/{ID}.npz
Run folder: model.keras, last.keras, state.json, config.yaml, history.csv, curves.png,
    val_per_class.csv, model.onnx, model.onnx.json (out-of-fold runs: oof/)
Prepared folder: shard_00000.npz ..., prepare.json, index.json
Submission NAME.csv: NAME.cells.csv, NAME.failures.csv, NAME.csv.journal.jsonl
"""

from __future__ import annotations

import re
from pathlib import Path

from hpa_scc.core.config_images import CropConfig
from hpa_scc.core.errors import InputError

# data folder
TRAIN_DIR = "train"
TEST_DIR = "test"
LABELS_FILE = "train.csv"
SAMPLE_FILE = "sample_submission.csv"
TRUTH_DIR = "truth"  # label images with the same names as a mask folder's
CELL_LABELS_FILE = "cell_labels.csv"
SOLUTION_FILE = "solution.csv"
DATA_MANIFEST = "manifest.json"
# mask folder
MASK_MANIFEST = "segment_manifest.json"
CROP_CACHE_DIR = "crops"
# run folder
MODEL_FILE = "model.keras"  # the model predict uses (best validation loss; MIL: the last epoch)
LAST_FILE = "last.keras"  # every epoch's model, to resume from
STATE_FILE = "state.json"
CONFIG_FILE = "config.yaml"
RUN_STAMP_FILE = "run_settings.json"  # the crop and model settings the run's model was trained with
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
VAL_PER_CLASS_FILE = "val_per_class.csv"
ONNX_FILE = "model.onnx"
ONNX_INFO_FILE = "model.onnx.json"
OOF_DIR = "oof"
MEMBERS_DIR = "members"  # an ensemble run (train.members >= 2): members/m0, members/m1, ...
# prepared folder
SETTINGS_FILE = "prepare.json"
INDEX_FILE = "index.json"
# beside a submission
CELL_TABLE_SUFFIX = ".cells.csv"  # the per-cell table `hpa-scc predict` writes beside a submission
JOURNAL_SUFFIX = ".journal.jsonl"
FAILURES_SUFFIX = ".failures.csv"

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_id(image_id: str) -> str:
    """Return `image_id` if it is a plain file-name stem; raise InputError otherwise.

    Rejects empty IDs, path separators, `..` and leading dots, so an ID can never escape
    the image folder.
    """
    if not isinstance(image_id, str) or not image_id:
        raise InputError(f"invalid image ID {image_id!r}: empty")
    if "/" in image_id or "\\" in image_id or ".." in image_id or not _ID_PATTERN.match(image_id):
        raise InputError(
            f"invalid image ID {image_id!r}: only letters, digits, '_', '-' and '.' are allowed "
            "(no path separators or '..')"
        )
    return image_id


def journal_path(out: str | Path) -> Path:
    return Path(str(out) + JOURNAL_SUFFIX)


def cells_table_path(out: str | Path) -> Path:
    return Path(str(out)).with_suffix(CELL_TABLE_SUFFIX)


def failures_path(out: str | Path) -> Path:
    return Path(str(out)).with_suffix(FAILURES_SUFFIX)


def mask_paths(mask_dir: str | Path, image_id: str) -> tuple[Path, Path]:
    """(cells, nuclei) PNG paths of an ID in a mask folder."""
    mask_dir = Path(mask_dir)
    return mask_dir / f"{image_id}_cells.png", mask_dir / f"{image_id}_nuclei.png"


def truth_paths(data: str | Path, image_id: str) -> tuple[Path, Path]:
    """(cells, nuclei) true label images of a generated data set: its truth/ folder is a mask folder."""
    return mask_paths(Path(data) / TRUTH_DIR, image_id)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def cache_path(cache_dir: str | Path, image_id: str, cfg: CropConfig, model_size: int, channels: int) -> Path:
    """MASKDIR/crops/TAG/ID.npz, TAG naming every setting that changes the crops' pixels."""
    tag = f"s{cfg.size}_m{model_size}_p{cfg.padding:g}_z{int(cfg.zero_background)}_c{channels}"
    return Path(cache_dir) / tag / f"{validate_id(image_id)}.npz"
