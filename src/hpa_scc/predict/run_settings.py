"""What prediction takes from a training run: its crop and model settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpa_scc.core.config import Config, load_config
from hpa_scc.core.config_images import CropConfig
from hpa_scc.core.errors import InputError
from hpa_scc.core.layout import CONFIG_FILE, MODEL_FILE


@dataclass(frozen=True)
class RunSettings:
    """A training run's crop and model settings (from RUNDIR/config.yaml)."""

    crops: CropConfig
    channels: int
    size: int


def read_run_settings(run: str | Path) -> RunSettings:
    """Crop/model settings of a training run; InputError when RUNDIR is not one."""
    run = Path(run)
    if not (run / MODEL_FILE).is_file():
        raise InputError(f"{run} is not a training run: {run / MODEL_FILE} is missing")
    cfg = load_config(run / CONFIG_FILE) if (run / CONFIG_FILE).is_file() else Config()
    return RunSettings(cfg.crops, cfg.model.channels, cfg.model.size)
