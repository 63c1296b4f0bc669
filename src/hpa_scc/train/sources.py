"""Example pixels read with bounded memory, and the windowed shuffle that keeps reads cheap."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hpa_scc.core.config import Config
from hpa_scc.core.memory import RecentlyUsed
from hpa_scc.crops.cache import load_or_make_crops
from hpa_scc.crops.cut import whole_image
from hpa_scc.data.images import read_rgby
from hpa_scc.train.examples import Example


class CropSource:
    """Reads example pixels (uint8 S x S x C), keeping `capacity` images' crops in memory (least
    recently used out). `group` names the unit that is read at once (here: the image)."""

    def __init__(self, cfg: Config, images: Path, masks: Path, cache: Optional[Path]):
        self.cfg, self.images, self.masks, self.cache = cfg, images, masks, cache
        self._loaded = RecentlyUsed(cfg.train.shuffle_window)
        self.capacity = self._loaded.capacity

    def group(self, example: Example) -> str:
        return example.image_id

    def pixels(self, example: Example) -> np.ndarray:
        if example.cell_index < 0:
            return whole_image(read_rgby(self.images, example.image_id), self.cfg.model.size, self.cfg.model.channels)
        crops = self._loaded.get(example.image_id, lambda: load_or_make_crops(
            self.images, self.masks, example.image_id, self.cfg.crops, self.cfg.model.size, self.cache,
            self.cfg.model.channels).crops)
        return crops[example.cell_index]


def windowed_order(items: list, group_of, capacity: int, rng: np.random.Generator) -> list:
    """`items` shuffled for training with bounded reads: groups (images or shards) in random order,
    taken `capacity` at a time (what the source holds in memory), items shuffled within each window."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    keys = list(groups)
    rng.shuffle(keys)
    order = []
    for start in range(0, len(keys), capacity):
        window = [item for key in keys[start:start + capacity] for item in groups[key]]
        order += [window[i] for i in rng.permutation(len(window))]
    return order
