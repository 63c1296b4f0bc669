"""Typed configuration: a frozen dataclass tree loaded from `configs/*.yaml`.

    cfg = load_config("configs/demo.yaml", overrides=["train.epochs=2"])

Unknown keys are rejected with a ConfigError naming the dotted key; values are converted to
the declared types (int, float, bool, str, optional, tuples). CLI flags are applied as
overrides, so the resolved config a run saves is the one it used. Sizes and areas of the
segmentation stage are given for a 2048x2048 image and scaled with the image side.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from hpa_scc.core.config_images import CropConfig, PathsConfig, PrepareConfig, ScoreConfig, SegmentConfig, SynthConfig
from hpa_scc.core.config_learning import ModelConfig, PredictConfig, TrainConfig
from hpa_scc.core.errors import ConfigError
from hpa_scc.core.files import atomic_write_text


@dataclass(frozen=True)
class Config:
    """The whole configuration tree."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML value to the type `hint`, raising ConfigError naming `key`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        item_types = [args[0]] * len(value) if (len(args) == 2 and args[1] is Ellipsis) else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"config key {key!r} must have {len(item_types)} items, got {len(value)}")
        return tuple(_convert(v, t, key) for v, t in zip(value, item_types))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        try:
            converted = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} must be {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return converted
    if hint is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return str(value)
    return value


# Keys that earlier versions wrote into a run's config.yaml and that no longer exist: read and dropped
# (with a warning), so that finished runs stay usable.
RETIRED_KEYS = {"segment.seed_threshold", "segment.nucleus_prob_threshold", "segment.cell_background_threshold",
                "segment.cell_close"}


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a dict, rejecting keys it does not declare (retired ones are dropped)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    retired = sorted(k for k in values if prefix + k in RETIRED_KEYS)
    if retired:
        warnings.warn(f"config keys {', '.join(prefix + k for k in retired)} are no longer used; ignored")
        values = {k: v for k, v in values.items() if k not in retired}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + str(unknown[0])!r} (known keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(names))})"
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def config_from_dict(values: dict, overrides: Optional[list[str]] = None) -> Config:
    """Build a Config from nested dicts plus "section.key=value" overrides (YAML values)."""
    tree = _deep_copy(values or {})
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return _build(Config, tree)


def _deep_copy(values: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in values.items()}


def packaged_configs() -> Path:
    """The folder of the config files shipped inside the package (`configs/` links to it)."""
    return Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(path: str | Path) -> Path:
    """A config file on disk, or else the shipped file of that name (`default.yaml`,
    `configs/default.yaml`): after a wheel install the project's configs/ folder is not there."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = packaged_configs() / path.name
    if path.suffix in (".yaml", ".yml") and path.parent in (Path("."), Path("configs")) and shipped.is_file():
        return shipped
    available = ", ".join(sorted(p.name for p in packaged_configs().glob("*.yaml")))
    raise ConfigError(f"config file {path} does not exist (shipped configs: {available})")


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config file (None = built-in defaults) and apply overrides. `path` may name a
    shipped config (`default.yaml`, `configs/cpu.yaml`) from any working directory."""
    values: dict = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        values = loaded or {}
    try:
        config_from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
    overrides = list(overrides or [])
    for count, item in enumerate(overrides, start=1):  # the first override that breaks the config is named
        try:
            config_from_dict(values, overrides[:count])
        except ConfigError as exc:
            raise ConfigError(f"--set {item}: {exc}") from None
    return config_from_dict(values, overrides)


def config_to_dict(cfg: Any) -> dict:
    """Config -> plain nested dict (tuples as lists), suitable for YAML."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace, re-exported for frozen config sections."""
    return dataclasses.replace(cfg, **changes)
