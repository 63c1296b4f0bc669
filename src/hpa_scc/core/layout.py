"""Every file name of the data, mask, crop, run, prepared and submission folders: one owner each."""

from __future__ import annotations

from pathlib import Path

from hpa_scc.core.config_images import CropConfig
from hpa_scc.data.images import validate_id


CELL_TABLE_SUFFIX = ".cells.csv"  # the per-cell table `hpa-scc predict` writes beside a submission


JOURNAL_SUFFIX = ".journal.jsonl"


FAILURES_SUFFIX = ".failures.csv"


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


MANIFEST = "segment_manifest.json"


SETTINGS_FILE = "prepare.json"


INDEX_FILE = "index.json"


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def cache_path(cache_dir: str | Path, image_id: str, cfg: CropConfig, model_size: int, channels: int) -> Path:
    """MASKDIR/crops/TAG/ID.npz, TAG naming every setting that changes the crops' pixels."""
    tag = f"s{cfg.size}_m{model_size}_p{cfg.padding:g}_z{int(cfg.zero_background)}_c{channels}"
    return Path(cache_dir) / tag / f"{validate_id(image_id)}.npz"
