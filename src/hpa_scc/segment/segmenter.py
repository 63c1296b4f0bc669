"""The segmenter named by `segment.backend`, built once per process."""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.segment.classical import segment_classical
from hpa_scc.segment.hpacellseg import HpaCellSegBackend
from hpa_scc.segment.labels import Segmentation
from hpa_scc.segment.unet import UnetBackend


def make_segmenter(cfg: SegmentConfig) -> Callable[[np.ndarray], Segmentation]:
    """Backend named by the config, as a function RGBY -> Segmentation."""
    if cfg.backend == "hpacellseg":
        return HpaCellSegBackend(cfg)
    if cfg.backend == "unet":
        return UnetBackend(cfg)
    return lambda rgby: segment_classical(rgby, cfg)


@functools.lru_cache(maxsize=4)
def shared_segmenter(cfg: SegmentConfig) -> Callable[[np.ndarray], Segmentation]:
    """The segmenter for these settings, built once per process (the hpacellseg backend loads its
    weights once per worker, not once per image)."""
    return make_segmenter(cfg)


def segment_image(rgby: np.ndarray, cfg: SegmentConfig) -> Segmentation:
    """Segment one RGBY image with the configured backend (built once per process)."""
    return shared_segmenter(cfg)(rgby)
