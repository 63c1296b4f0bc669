"""Synthetic HPA-like images with cell-level truth: the embedded default data set.

    hpa-scc synth --config configs/demo.yaml --out data/demo

Each image is a field of irregular adherent cells (touching each other and the border) with
four channels like the real ones: nuclei (blue), radial microtubule fibres (red), a
perinuclear reticular ER texture (yellow) and a green protein channel. The green channel
draws, per cell, a distinct pattern for each of classes 0-17 where that compartment lives
(nucleoplasm, nuclear rim, nucleoli, speckles, ER, Golgi, fibres, membrane, dots, ...).

Weak labels, as on Kaggle: an image draws 1-3 patterns (class frequencies of the real
train.csv); each cell shows each pattern with probability `p_express`; a cell that shows none
is Negative (18). `train.csv` holds only the image-level union (an image whose cells all are
negative is labelled 18). The truth the competition hides is written too.

Output layout (`out/`):
    train/{ID}_{red,green,blue,yellow}.png   8- or 16-bit single-channel PNGs
    test/{ID}_{...}.png
    train.csv, sample_submission.csv         Kaggle layout
    truth/{ID}_cells.png, {ID}_nuclei.png    uint16 label images (cells and nuclei share IDs)
    cell_labels.csv                          ID,cell_id,Label (train and test)
    solution.csv                             test truth in the submission layout (confidence 1)
    manifest.json                            the config used and per-image facts

Deterministic for a seed, whatever the number of workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from hpa_scc.core.classes import NEGATIVE, NUM_CLASSES, format_label
from hpa_scc.core.config import config_to_dict
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.files import atomic_write_text, write_stamp
from hpa_scc.core.layout import CELL_LABELS_FILE, DATA_MANIFEST, LABELS_FILE, SAMPLE_FILE, SOLUTION_FILE, truth_paths
from hpa_scc.core.parallel import ordered_stream
from hpa_scc.data.images import CHANNELS, to_uint8, to_uint16, write_png
from hpa_scc.data.tables import write_cell_labels, write_labels
from hpa_scc.submission.encode import empty_mask_token, encode_label_image
from hpa_scc.submission.rows import Prediction, write_submission
from hpa_scc.synth.draw import generate_image


@dataclass
class ImageRecord:
    """What the data-set writer keeps of one generated image."""

    image_id: str
    split: str
    size: int
    bits: int
    image_labels: tuple[int, ...]
    cell_labels: dict[int, tuple[int, ...]]
    tokens: dict[int, str]
    mitotic: tuple[int, ...] = ()


def _image_task(args: tuple) -> ImageRecord:
    seed, split, size, bits, cfg, out = args
    image = generate_image(seed, size, cfg, bits)
    folder = Path(out) / split
    convert = to_uint16 if bits == 16 else to_uint8
    for i, c in enumerate(CHANNELS):
        write_png(folder / f"{image.image_id}_{c}.png", convert(image.rgby[..., i]))
    cells_path, nuclei_path = truth_paths(out, image.image_id)
    write_png(cells_path, image.cells)
    write_png(nuclei_path, image.nuclei)
    tokens = encode_label_image(image.cells) if split == "test" else {}
    return ImageRecord(image.image_id, split, size, bits, image.image_labels, image.cell_labels, tokens, image.mitotic)


def plan_dataset(cfg: SynthConfig) -> list[tuple]:
    """Per-image (seed, split, size, bits) in a fixed order, independent of workers."""
    root = np.random.SeedSequence(cfg.seed)
    plan_rng = np.random.default_rng(root.spawn(1)[0])
    children = root.spawn(cfg.n_train + cfg.n_test + 1)[1:]
    plan = []
    for i, child in enumerate(children):
        split = "train" if i < cfg.n_train else "test"
        size = int(plan_rng.choice(cfg.sizes))
        bits = 16 if plan_rng.random() < cfg.fraction_16bit else 8
        plan.append((child, split, size, bits))
    return plan


def generate_dataset(cfg: SynthConfig, out: str | Path, progress: bool = True, workers: Optional[int] = None) -> list[ImageRecord]:
    """Generate the whole data set into `out` (see module docstring); returns its records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, split, size, bits, cfg, str(out)) for seed, split, size, bits in plan_dataset(cfg)]
    workers = cfg.workers if workers is None else workers
    stream = ordered_stream(_image_task, tasks, workers if workers > 1 else 0, 2 * workers, spawn=False)
    records = list(tqdm(stream, total=len(tasks), desc="synth", unit="img", disable=not progress))

    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    write_labels(out / LABELS_FILE, {r.image_id: r.image_labels for r in train})
    write_cell_labels(out / CELL_LABELS_FILE,
                      {(r.image_id, cid): labs for r in records for cid, labs in sorted(r.cell_labels.items())})

    sample = "ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(
        f"{r.image_id},{r.size},{r.size},0 1 {empty_mask_token(r.size, r.size)}\n" for r in test
    )
    atomic_write_text(out / SAMPLE_FILE, sample)
    solution = {
        r.image_id: [Prediction(label, 1.0, r.tokens[cid]) for cid, labs in sorted(r.cell_labels.items()) for label in labs]
        for r in test
    }
    write_submission(out / SOLUTION_FILE, [(r.image_id, r.size, r.size) for r in test], solution)
    images = [{"ID": r.image_id, "split": r.split, "size": r.size, "bits": r.bits, "cells": len(r.cell_labels),
               "labels": format_label(r.image_labels), "mitotic": list(r.mitotic)} for r in records]
    write_stamp(out / DATA_MANIFEST, config_to_dict(cfg), images=images)  # the settings it was made with
    return records


def summarize(records: list[ImageRecord]) -> dict:
    """Counts for a printed summary: images per split, cells, label frequencies."""
    counts = np.zeros(NUM_CLASSES, int)
    for r in records:
        for c in r.image_labels:
            counts[c] += 1
    return {
        "train_images": sum(r.split == "train" for r in records),
        "test_images": sum(r.split == "test" for r in records),
        "cells": sum(len(r.cell_labels) for r in records),
        "negative_cells": sum(labs == (NEGATIVE,) for r in records for labs in r.cell_labels.values()),
        "sizes": sorted({r.size for r in records}),
        "bits": sorted({r.bits for r in records}),
        "image_label_counts": counts.tolist(),
    }


def read_mitotic(data: str | Path) -> dict[str, set[int]]:
    """{image ID: IDs of its mitotic cells} from a generated data set's manifest (empty for old sets)."""
    try:
        images = json.loads((Path(data) / DATA_MANIFEST).read_text()).get("images", [])
    except (OSError, ValueError):
        return {}
    return {image["ID"]: set(image.get("mitotic", [])) for image in images}
