"""What prediction takes from a training run: its crop and model settings, checked against the
stamp that training wrote (RUNDIR/run_settings.json), so an edited config.yaml is not trusted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpa_scc.core.config import load_config
from hpa_scc.core.config_images import CropConfig
from hpa_scc.core.errors import InputError
from hpa_scc.core.layout import CONFIG_FILE, MODEL_FILE, RUN_STAMP_FILE
from hpa_scc.model.run_stamp import stamp_matches


@dataclass(frozen=True)
class RunSettings:
    """A training run's crop and model settings (from RUNDIR/config.yaml)."""

    crops: CropConfig
    channels: int
    size: int


def read_run_settings(run: str | Path) -> RunSettings:
    """Crop/model settings of a training run; InputError when RUNDIR is not one, has no
    config.yaml, or its config.yaml's crop or model settings differ from those it was trained with."""
    run = Path(run)
    if not (run / MODEL_FILE).is_file():
        raise InputError(f"{run} is not a training run: {run / MODEL_FILE} is missing")
    if not (run / CONFIG_FILE).is_file():
        raise InputError(f"{run / CONFIG_FILE} is missing: the run's crop and model settings are unknown "
                         "(copy the config.yaml the model was trained with into the run folder)")
    cfg = load_config(run / CONFIG_FILE)
    if stamp_matches(run, cfg) is False:
        raise InputError(f"{run / CONFIG_FILE}: its crops or model settings are not those the model was trained "
                         f"with ({run / RUN_STAMP_FILE} records them): restore the run's own config.yaml")
    return RunSettings(cfg.crops, cfg.model.channels, cfg.model.size)
