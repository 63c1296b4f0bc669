"""Flags several commands share, each defined once, and the config they resolve to."""

from __future__ import annotations

import argparse
from typing import Optional

from hpa_scc.core.config import Config, load_config
from hpa_scc.core.errors import ConfigError


def add_config(parser: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    """--config FILE (a path or a shipped name; `default` when not given) and --set KEY=VALUE."""
    where = f"default: {default}" if default else "default: built-in defaults"
    parser.add_argument("--config", default=default, help=f"YAML config file ({where})")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=2")


def add_fail_fast(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first bad image (default: do the others, "
                        "then name every bad one and exit with status 1)")


def config_of(args: argparse.Namespace, extra: Optional[list[str]] = None) -> Config:
    """The config named by --config, with --set overrides and then `extra` ones applied."""
    path, sets = getattr(args, "config", None), list(getattr(args, "set", None) or [])
    if not extra:
        return load_config(path, sets)
    load_config(path, sets)  # a bad file or --set value is named as such first
    try:
        return load_config(path, sets + extra)
    except ConfigError as exc:  # then the command's own flags, named as the setting they set
        raise ConfigError(str(exc).replace("--set ", "the flag setting ", 1)) from None


def flag_overrides(args: argparse.Namespace, keys: dict[str, str]) -> list[str]:
    """'section.key=value' overrides for the flags in `keys` ({flag attribute: config key}) that were given."""
    return [f"{key}={getattr(args, flag)}" for flag, key in keys.items() if getattr(args, flag) is not None]
