"""The 19 HPA single-cell classes and conversions between label strings and vectors.

A label string is the `Label` column of `train.csv`: class indices joined by `|`, e.g. "8|5|0".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hpa_scc.core.errors import InputError


@dataclass(frozen=True)
class HpaClass:
    """One class: its index (0-18), full name and short key."""

    index: int
    name: str
    key: str


CLASSES: tuple[HpaClass, ...] = (
    HpaClass(0, "Nucleoplasm", "nucleoplasm"),
    HpaClass(1, "Nuclear membrane", "nuc_membrane"),
    HpaClass(2, "Nucleoli", "nucleoli"),
    HpaClass(3, "Nucleoli fibrillar center", "nucleoli_fc"),
    HpaClass(4, "Nuclear speckles", "nuc_speckles"),
    HpaClass(5, "Nuclear bodies", "nuc_bodies"),
    HpaClass(6, "Endoplasmic reticulum", "er"),
    HpaClass(7, "Golgi apparatus", "golgi"),
    HpaClass(8, "Intermediate filaments", "int_filaments"),
    HpaClass(9, "Actin filaments", "actin"),
    HpaClass(10, "Microtubules", "microtubules"),
    HpaClass(11, "Mitotic spindle", "mitotic_spindle"),
    HpaClass(12, "Centrosome", "centrosome"),
    HpaClass(13, "Plasma membrane", "plasma_membrane"),
    HpaClass(14, "Mitochondria", "mitochondria"),
    HpaClass(15, "Aggresome", "aggresome"),
    HpaClass(16, "Cytosol", "cytosol"),
    HpaClass(17, "Vesicles and punctate cytosolic patterns", "vesicles"),
    HpaClass(18, "Negative", "negative"),
)


NUM_CLASSES = len(CLASSES)


NEGATIVE = 18


def parse_label(text: str) -> tuple[int, ...]:
    """Parse "8|5|0" into sorted unique class indices (0, 5, 8).

    Raises InputError for an empty string, a non-integer or an index outside 0-18.
    """
    text = str(text).strip()
    if not text:
        raise InputError("empty label")
    labels = set()
    for part in text.split("|"):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise InputError(f"label {part!r} in {text!r} is not an integer") from None
        if not 0 <= value < NUM_CLASSES:
            raise InputError(f"label {value} in {text!r} is outside 0-{NUM_CLASSES - 1}")
        labels.add(value)
    return tuple(sorted(labels))


def format_label(labels: Iterable[int]) -> str:
    """Join class indices into a label string, e.g. [8, 5, 0] -> "0|5|8" (sorted, unique)."""
    values = sorted({int(v) for v in labels})
    for v in values:
        if not 0 <= v < NUM_CLASSES:
            raise InputError(f"label {v} is outside 0-{NUM_CLASSES - 1}")
    return "|".join(str(v) for v in values)


def to_multi_hot(labels: Iterable[int]) -> np.ndarray:
    """Class indices -> float32 vector of shape (19,) with 1.0 at each index."""
    vec = np.zeros(NUM_CLASSES, dtype=np.float32)
    for v in labels:
        vec[int(v)] = 1.0
    return vec


def from_multi_hot(vector: np.ndarray, threshold: float = 0.5) -> tuple[int, ...]:
    """Vector of shape (19,) -> indices whose value is >= threshold."""
    vector = np.asarray(vector)
    if vector.shape != (NUM_CLASSES,):
        raise InputError(f"expected a vector of shape ({NUM_CLASSES},), got {vector.shape}")
    return tuple(int(i) for i in np.flatnonzero(vector >= threshold))

COMPETITION_IOU = 0.6  # a detection matches a true cell at mask IoU >= this (the competition's metric)
