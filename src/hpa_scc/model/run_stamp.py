"""The stamp a training run leaves beside its model (RUNDIR/run_settings.json): the crop and model
settings the model was trained with, so that a config.yaml edited or copied in later is caught."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hpa_scc.core.config import Config, config_to_dict
from hpa_scc.core.files import settings_hash, stamp_key, write_stamp
from hpa_scc.core.layout import RUN_STAMP_FILE


def model_settings(cfg: Config) -> dict:
    """The settings a trained model depends on: how its crops were cut and the model itself."""
    values = config_to_dict(cfg)
    return {"crops": values["crops"], "model": values["model"]}


def stamp_run(run: Path, cfg: Config) -> None:
    """Record in RUNDIR/run_settings.json the crop and model settings of the model trained there."""
    write_stamp(Path(run) / RUN_STAMP_FILE, model_settings(cfg))


def stamp_matches(run: Path, cfg: Config) -> Optional[bool]:
    """Whether `cfg`'s crop and model settings are those of the run's stamp; None without a stamp
    (runs trained before stamps existed)."""
    recorded = stamp_key(Path(run) / RUN_STAMP_FILE)
    return None if recorded is None else recorded == settings_hash(model_settings(cfg))
