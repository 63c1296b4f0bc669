"""The pipeline on a generated data set, shared by the demo and the quality bench: the data (reused
when its manifest records the same settings), its masks, their F1 against the truth, and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpa_scc.core.classes import COMPETITION_IOU
from hpa_scc.core.config import config_to_dict
from hpa_scc.core.config_images import ScoreConfig, SegmentConfig, SynthConfig
from hpa_scc.core.files import settings_hash, stamp_key
from hpa_scc.core.layout import (DATA_MANIFEST, MASK_MANIFEST, SAMPLE_FILE, SOLUTION_FILE, TEST_DIR, TRAIN_DIR,
                                 truth_paths)
from hpa_scc.data.images import list_image_ids, read_label_png
from hpa_scc.evaluate.baselines import write_floor
from hpa_scc.metrics.agreement import f1_score, match_cells
from hpa_scc.metrics.competition import ScoreResult, score_files
from hpa_scc.segment.cache import mask_settings, read_masks, segment_folder
from hpa_scc.synth.dataset import generate_dataset


def ensure_generated(synth: SynthConfig, data: Path, progress: bool = True) -> bool:
    """Generate the data set into `data` unless its manifest records these settings; True when reused."""
    if stamp_key(data / DATA_MANIFEST) == settings_hash(config_to_dict(synth)):
        return True
    generate_dataset(synth, data, progress=progress)
    return False


def segment_splits(data: Path, masks: Path, cfg: SegmentConfig, progress: bool = True) -> tuple[list[str], list[str]]:
    """Segment the train and test images of a data set into `masks` (resumes); returns (train IDs, test IDs).
    The pipeline owns its mask folder: masks made with other settings are made again."""
    train_ids, test_ids = list_image_ids(data / TRAIN_DIR), list_image_ids(data / TEST_DIR)
    recorded = stamp_key(masks / MASK_MANIFEST)
    redo = recorded is not None and recorded != settings_hash(mask_settings(cfg))
    if redo:
        print(f"      {masks} holds masks of other segmentation settings: segmenting again")
    for split, ids in ((TRAIN_DIR, train_ids), (TEST_DIR, test_ids)):
        segment_folder(data / split, masks, cfg, ids=ids, progress=progress, force=redo)
    return train_ids, test_ids


def segmentation_f1(data: Path, masks: Path, ids: list[str], iou: float = COMPETITION_IOU) -> float:
    """Cell F1 of the cached masks of `ids` against the generated truth, pooled over the images."""
    totals = np.zeros(3, int)
    for image_id in ids:
        totals += match_cells(read_masks(masks, image_id).cells, read_label_png(truth_paths(data, image_id)[0]), iou)
    return f1_score(*totals.tolist())[2]


def score_generated(submission: Path, data: Path, cfg: ScoreConfig) -> ScoreResult:
    """A submission of the data set's test images scored against its solution."""
    return score_files(submission, data / SOLUTION_FILE, iou=cfg.iou, strict=cfg.strict)


def floor_map(data: Path, masks: Path, out: Path, cfg: ScoreConfig) -> float:
    """mAP of the floor submission (every cell of `masks`, every label, one confidence), written to `out`."""
    return score_generated(write_floor(data / SAMPLE_FILE, masks, out), data, cfg).map
