"""Range checks of numeric config fields, declared beside each field's section.

    RANGES: ClassVar[dict[str, str]] = {"learning_rate": "(0, inf)", "val_fraction": "[0, 1)"}
    def __post_init__(self): check_ranges(self, "train")

An interval is written as in mathematics: "[" / "]" include the bound, "(" / ")" exclude it; "inf"
for no upper bound.
"""

from __future__ import annotations

import math

from hpa_scc.core.errors import ConfigError


def in_interval(value: float, interval: str) -> bool:
    """Whether `value` lies in an interval such as "[0, 1)" or "(0, inf)"."""
    low_text, high_text = interval[1:-1].split(",")
    low, high = float(low_text), float(high_text)
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below and not math.isnan(value)


def check_ranges(section: object, name: str) -> None:
    """ConfigError naming the first field of `section` (a config dataclass with a RANGES table)
    outside its interval, e.g. "train.learning_rate must be in (0, inf), got -1.0"."""
    for field_name, interval in getattr(section, "RANGES", {}).items():
        value = getattr(section, field_name)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not in_interval(float(v), interval) for v in values):
            raise ConfigError(f"{name}.{field_name} must be in {interval}, got {value!r}")
