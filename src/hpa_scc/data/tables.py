"""Every CSV table the project reads or writes: train.csv, per-cell labels, the sample submission,
the per-cell table `predict` writes. Errors name the file and row (header = row 1).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hpa_scc.core.classes import NUM_CLASSES, format_label, parse_label
from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_write_text
from hpa_scc.data.images import validate_id


@dataclass(frozen=True)
class SampleRow:
    """One row of sample_submission.csv."""

    image_id: str
    width: int
    height: int


def _read_csv(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda column: column.str.strip())  # trailing spaces in IDs and labels
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r} (expected columns {', '.join(columns)})")
    return frame


def read_labels(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Read `train.csv` (ID,Label) -> {ID: sorted class indices}, in file order.

    Errors name the file and row (1-based, header = row 1): empty or unknown labels,
    duplicate IDs, invalid IDs, missing columns.
    """
    frame = _read_csv(path, ("ID", "Label"))
    labels: dict[str, tuple[int, ...]] = {}
    for row_number, (image_id, label) in enumerate(zip(frame["ID"], frame["Label"]), start=2):
        try:
            validate_id(image_id)
            labels_of_row = parse_label(label)
        except InputError as exc:
            raise InputError(f"{path} row {row_number}: {exc}") from None
        if image_id in labels:
            raise InputError(f"{path} row {row_number}: duplicate ID {image_id}")
        labels[image_id] = labels_of_row
    return labels


def read_cell_labels(path: str | Path) -> dict[tuple[str, int], tuple[int, ...]]:
    """Read a per-cell label table (ID,cell_id,Label) -> {(ID, cell_id): class indices}."""
    frame = _read_csv(path, ("ID", "cell_id", "Label"))
    table: dict[tuple[str, int], tuple[int, ...]] = {}
    for row_number, (image_id, cell, label) in enumerate(zip(frame["ID"], frame["cell_id"], frame["Label"]), start=2):
        try:
            key = (validate_id(image_id), int(cell))
            table[key] = parse_label(label)
        except (InputError, ValueError) as exc:
            raise InputError(f"{path} row {row_number}: {exc}") from None
    return table


def write_labels(path: str | Path, labels: dict[str, Iterable[int]]) -> None:
    """Write an image label table (ID,Label, as `read_labels` reads it) atomically, in dict order."""
    atomic_write_text(path, "ID,Label\n" + "".join(f"{i},{format_label(labs)}\n" for i, labs in labels.items()))


def write_cell_labels(path: str | Path, labels: dict[tuple[str, int], Iterable[int]]) -> None:
    """Write a per-cell label table (ID,cell_id,Label, as `read_cell_labels` reads it) atomically, in dict order."""
    atomic_write_text(path, "ID,cell_id,Label\n" + "".join(f"{i},{c},{format_label(labs)}\n" for (i, c), labs in labels.items()))


def read_sample_submission(path: str | Path) -> list[SampleRow]:
    """Read sample_submission.csv -> rows (ID, width, height) in file order."""
    frame = _read_csv(path, ("ID", "ImageWidth", "ImageHeight"))
    rows: list[SampleRow] = []
    seen: set[str] = set()
    for row_number, (image_id, width, height) in enumerate(
        zip(frame["ID"], frame["ImageWidth"], frame["ImageHeight"]), start=2
    ):
        try:
            validate_id(image_id)
            w, h = int(width), int(height)
        except (InputError, ValueError) as exc:
            raise InputError(f"{path} row {row_number}: {exc}") from None
        if w <= 0 or h <= 0:
            raise InputError(f"{path} row {row_number}: image size {width}x{height} is not positive")
        if image_id in seen:
            raise InputError(f"{path} row {row_number}: duplicate ID {image_id}")
        seen.add(image_id)
        rows.append(SampleRow(image_id, w, h))
    return rows


def read_cells_table(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """{(ID, cell_id): final probabilities (19,)} from a `NAME.cells.csv` that predict writes."""
    with open(path) as handle:
        return {(row["ID"], int(row["cell_id"])): np.array([float(row[f"p{c}"]) for c in range(NUM_CLASSES)])
                for row in csv.DictReader(handle)}
