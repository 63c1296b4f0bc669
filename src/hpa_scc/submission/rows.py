"""Submission and solution CSVs: write, read, validate.

Layout: `ID,ImageWidth,ImageHeight,PredictionString`; PredictionString is space-separated
triples `label confidence token` (one per cell and label; see encode.py for the token).
Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Sequence

import numpy as np

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.errors import InputError, SubmissionError
from hpa_scc.core.files import atomic_path
from hpa_scc.data.images import validate_id
from hpa_scc.data.tables import SampleRow, read_sample_submission
from hpa_scc.submission.encode import token_to_rle

HEADER = ("ID", "ImageWidth", "ImageHeight", "PredictionString")


class Prediction(NamedTuple):
    """One detection: class index, confidence in [0, 1], mask token."""

    label: int
    confidence: float
    token: str


@dataclass
class SubmissionRow:
    """One parsed row."""

    image_id: str
    width: int
    height: int
    predictions: list[Prediction] = field(default_factory=list)
    row_number: int = 0


def format_confidence(value: float) -> str:
    """Compact decimal with at most 6 significant digits, never in exponent form."""
    value = float(value)
    if not 0.0 <= value <= 1.0 or value != value:
        raise InputError(f"confidence {value} is outside [0, 1]")
    text = np.format_float_positional(value, precision=6, unique=True, fractional=False, trim="-")
    return text


def format_prediction_string(predictions: Iterable[Prediction]) -> str:
    """Triples -> 'label confidence token label confidence token ...'."""
    return " ".join(f"{int(p.label)} {format_confidence(p.confidence)} {p.token}" for p in predictions)


def write_submission(
    path: str | Path,
    rows: Sequence[tuple[str, int, int]] | Sequence[SampleRow],
    predictions: dict[str, list[Prediction]],
) -> Path:
    """Write one row per (ID, width, height) in `rows`' order, atomically.

    IDs missing from `predictions` get an empty PredictionString.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            for row in rows:
                image_id, width, height = (row.image_id, row.width, row.height) if isinstance(row, SampleRow) else row
                writer.writerow([image_id, width, height, format_prediction_string(predictions.get(image_id, []))])
    return path


def parse_prediction_string(text: str, width: int, height: int, check_masks: bool = True) -> list[Prediction]:
    """Parse a PredictionString; raises InputError naming the triple and problem."""
    parts = text.split()
    if len(parts) % 3:
        raise InputError(f"PredictionString has {len(parts)} tokens, not a multiple of 3 (label confidence mask)")
    out: list[Prediction] = []
    checked: set[str] = set()
    for i in range(0, len(parts), 3):
        label_text, conf_text, token = parts[i : i + 3]
        n = i // 3 + 1
        try:
            label = int(label_text)
        except ValueError:
            raise InputError(f"triple {n}: label {label_text!r} is not an integer") from None
        if not 0 <= label < NUM_CLASSES:
            raise InputError(f"triple {n}: label {label} is outside 0-{NUM_CLASSES - 1}")
        try:
            confidence = float(conf_text)
        except ValueError:
            raise InputError(f"triple {n}: confidence {conf_text!r} is not a number") from None
        if not 0.0 <= confidence <= 1.0:  # also rejects nan
            raise InputError(f"triple {n}: confidence {conf_text} is outside [0, 1]")
        if check_masks and token not in checked:
            try:
                token_to_rle(token, height, width)
            except InputError as exc:
                raise InputError(f"triple {n}: {exc}") from None
            checked.add(token)
        out.append(Prediction(label, confidence, token))
    return out


def _parse_row(fields: list[str], row_number: int, check_masks: bool) -> SubmissionRow:
    if len(fields) != 4:
        raise InputError(f"expected 4 columns ({','.join(HEADER)}), got {len(fields)}")
    image_id, width_text, height_text, text = fields
    image_id = image_id.strip()
    validate_id(image_id)
    try:
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise InputError(f"image size {width_text!r}x{height_text!r} is not two integers") from None
    if width <= 0 or height <= 0:
        raise InputError(f"image size {width}x{height} is not positive")
    predictions = parse_prediction_string(text, width, height, check_masks)
    return SubmissionRow(image_id, width, height, predictions, row_number)


def _row_name(row_number: int, fields: list[str]) -> str:
    """'row N (ID x)': the row number and, when the row has one, its ID."""
    image_id = fields[0].strip() if fields else ""
    return f"row {row_number} (ID {image_id})" if image_id else f"row {row_number}"


def iter_rows(path: str | Path, check_masks: bool = True, collect_errors: Optional[list[str]] = None,
              counts: Optional[Counter] = None):
    """Yield SubmissionRow per data row. Errors raise SubmissionError naming file, row and ID,
    or, with `collect_errors`, are appended there as 'row N (ID x): problem' and the row skipped.
    counts: incremented per data row read ("rows") and per malformed row ("malformed")."""
    counts = Counter() if counts is None else counts
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path} does not exist")
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # a byte-order mark is not part of the header
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        csv.field_size_limit(1 << 31)
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SubmissionError(f"{path} row 1: not a readable CSV ({exc})") from None
        if header is None or [h.strip() for h in header] != list(HEADER):
            raise SubmissionError(f"{path} row 1: header must be {','.join(HEADER)}, got {header}")
        row_number = 1
        while True:
            row_number += 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                problem = f"not readable CSV ({exc})"
                counts["rows"] += 1
                counts["malformed"] += 1
                if collect_errors is None:
                    raise SubmissionError(f"{path} row {row_number}: {problem}") from None
                collect_errors.append(f"row {row_number}: {problem}")
                return
            counts["rows"] += 1
            try:
                row = _parse_row(fields, row_number, check_masks)
            except InputError as exc:
                counts["malformed"] += 1
                if collect_errors is None:
                    raise SubmissionError(f"{path} {_row_name(row_number, fields)}: {exc}") from None
                collect_errors.append(f"{_row_name(row_number, fields)}: {exc}")
                continue
            yield row


def read_submission(path: str | Path, check_masks: bool = True) -> dict[str, SubmissionRow]:
    """Read a submission or solution CSV -> {ID: row}; SubmissionError on the first problem."""
    rows: dict[str, SubmissionRow] = {}
    for row in iter_rows(path, check_masks):
        if row.image_id in rows:
            raise SubmissionError(f"{path} row {row.row_number} (ID {row.image_id}): duplicate ID {row.image_id}")
        rows[row.image_id] = row
    return rows


@dataclass
class ValidationReport:
    """Outcome of `validate_submission`."""

    errors: list[str]
    rows: int = 0  # data rows read, malformed ones included
    malformed: int = 0
    images: int = 0
    cells: int = 0
    triples: int = 0
    label_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        labels = " ".join(f"{i}:{n}" for i, n in enumerate(self.label_counts) if n)
        return (
            f"rows {self.rows} read ({self.malformed} malformed), valid images {self.images}, cells {self.cells}, "
            f"triples {self.triples}\n"
            f"triples per label: {labels or '-'}"
        )


def validate_submission(path: str | Path, sample: Optional[str | Path] = None) -> ValidationReport:
    """Check every row (see parse_prediction_string) and, given the sample submission,
    missing / extra / duplicate IDs and image sizes. Collects all problems."""
    errors: list[str] = []
    report = ValidationReport(errors)
    seen: dict[str, SubmissionRow] = {}
    counts: Counter = Counter()
    for row in iter_rows(path, check_masks=True, collect_errors=errors, counts=counts):
        if row.image_id in seen:
            errors.append(f"row {row.row_number} (ID {row.image_id}): duplicate ID (first at row "
                          f"{seen[row.image_id].row_number})")
            continue
        seen[row.image_id] = row
        report.images += 1
        report.triples += len(row.predictions)
        report.cells += len({p.token for p in row.predictions})
        for label, n in Counter(p.label for p in row.predictions).items():
            report.label_counts[label] += n
    if sample is not None:
        expected = read_sample_submission(sample)
        expected_ids = {r.image_id for r in expected}
        for r in expected:
            got = seen.get(r.image_id)
            if got is None:
                errors.append(f"missing ID {r.image_id} (in {Path(sample).name})")
            elif (got.width, got.height) != (r.width, r.height):
                errors.append(f"row {got.row_number} (ID {r.image_id}): size {got.width}x{got.height} differs from "
                              f"the sample's {r.width}x{r.height}")
        for image_id, got in seen.items():
            if image_id not in expected_ids:
                errors.append(f"row {got.row_number} (ID {image_id}): not in {Path(sample).name}")
    report.rows, report.malformed = counts["rows"], counts["malformed"]
    return report
