"""Per-cell inference: every test cell through the model, blended with image-level scores.

    hpa-scc predict --model runs/demo --images data/demo/test --sample data/demo/sample_submission.csv \
        --out submissions/demo.csv --masks data/demo/masks [--engine onnx] [--cell-weight 0.7]

The stream: worker processes prepare images ahead of the model, in order (read RGBY, read the
cached masks or segment and cache them, cut crops, encode each cell's mask token); the main
process packs crops of consecutive images into fixed-size batches that cross image boundaries,
runs the engine, and maps each row of the output back to its (image, cell). Memory holds the
look-ahead window (`predict.prefetch` images) and one batch, never the whole test set.

Resume: each finished image is appended as one JSON line (raw cell and image probabilities,
boxes, tokens) to `OUT.journal.jsonl`; a re-run skips those IDs, and a half-written last line
left by a kill is dropped. When every ID is done, the submission CSV and the per-cell table
`OUT.cells.csv` (ID, cell_id, box, 19 blended probabilities) are written atomically, the CSV
is validated against the sample, and the journal is removed.

Crop and model settings come from the training run's `config.yaml`, so inference cuts cells
the way training did; the `predict` section of the user's config sets engine, blend and batch.
"""

from __future__ import annotations

import csv
import io as string_io
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.config import Config
from hpa_scc.core.config_learning import PredictConfig
from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_path, atomic_write_text, refuse_overwriting_inputs, remove_stale_temp_files
from hpa_scc.core.layout import cells_table_path, failures_path, journal_path
from hpa_scc.core.parallel import KeepGoing
from hpa_scc.data.images import list_image_ids
from hpa_scc.data.tables import SampleRow, read_sample_submission
from hpa_scc.model.engines import load_engine, with_tta
from hpa_scc.predict.batching import score_stream
from hpa_scc.predict.blend import predictions_of
from hpa_scc.predict.journal import Journal, journal_key, journal_record, read_journal
from hpa_scc.predict.run_settings import RunSettings, read_run_settings
from hpa_scc.predict.stream import FailedImage, PreparedImage, PrepareSpec, prepared_stream
from hpa_scc.segment.cache import record_mask_settings
from hpa_scc.submission.rows import validate_submission, write_submission


def _write_cells_table(path: Path, rows: list[SampleRow], records: dict[str, dict], finals: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write("ID,cell_id,top,left,bottom,right," + ",".join(f"p{c}" for c in range(NUM_CLASSES)) + "\n")
        for row in rows:
            record = records[row.image_id]
            for k, cell_id in enumerate(record["cell_ids"]):
                box = ",".join(str(v) for v in record["boxes"][k])
                probs = ",".join(f"{p:.6g}" for p in finals[row.image_id][k])
                handle.write(f"{row.image_id},{cell_id},{box},{probs}\n")


def _images_missing(rows: list[SampleRow], images: Path) -> list[tuple[str, str]]:
    """(ID, problem) of the sample submission's IDs with no channel file in `images`."""
    if not images.is_dir():
        raise InputError(f"image folder {images} does not exist")
    present = set(list_image_ids(images))
    return [(r.image_id, f"image {r.image_id}: no channel files {images / r.image_id}_*.png")
            for r in rows if r.image_id not in present]


def write_failures(path: Path, failures: list[tuple[str, str]]) -> Path:
    """NAME.failures.csv: ID,problem of every image that failed (written atomically)."""
    buffer = string_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ID", "problem"])
    writer.writerows(failures)
    atomic_write_text(path, buffer.getvalue())
    return path


def load_engines(run: Path, settings: RunSettings, pcfg: PredictConfig):
    """(cell engine, image engine or None, whole-image input side or None), TTA-wrapped when configured;
    InputError when a model's input does not match the run's settings."""
    engine = load_engine(run, pcfg.engine, pcfg.onnx_threads)
    if engine.input_shape[-1] != settings.channels or engine.input_shape[0] != settings.size:
        raise InputError(f"{run}: model input {engine.input_shape} does not match config.yaml "
                         f"({settings.size} px, {settings.channels} channels)")
    image_engine = load_engine(pcfg.image_model, pcfg.engine, pcfg.onnx_threads) if pcfg.image_model else None
    if image_engine is not None and image_engine.input_shape[-1] != settings.channels:
        raise InputError(f"image model {pcfg.image_model} takes {image_engine.input_shape[-1]} channels, "
                         f"the cell model {settings.channels}")
    whole_size = (image_engine or engine).input_shape[0] if pcfg.image_score == "whole" else None
    if pcfg.tta:
        one_pass = pcfg.engine == "keras"
        engine = with_tta(engine, pcfg.tta_rot90, one_pass)
        image_engine = with_tta(image_engine, pcfg.tta_rot90, one_pass) if image_engine is not None else None
    return engine, image_engine, whole_size


def predict_submission(cfg: Config, run: str | Path, images: str | Path, sample: str | Path, out: str | Path,
                       masks: Optional[str | Path] = None, force: bool = False, progress: bool = True,
                       workers: Optional[int] = None, fail_fast: bool = False, allow_failures: bool = False) -> dict:
    """Write the submission CSV `out` and its per-cell table; resumes from `out`'s journal.

    A bad image (unreadable, missing channel, size other than the sample's) does not stop the
    others: every good image is journalled. Then, when some failed: by default no CSV is written
    and BatchFailures names them (a re-run after the fix does only those); with allow_failures the
    CSV is written with an empty PredictionString for them and `NAME.failures.csv` lists them.
    fail_fast: InputError at the first bad image.

    Returns {"submission", "cells_table", "images", "cells", "new_images", "failures"}.
    """
    run, images, out = Path(run), Path(images), Path(out)
    refuse_overwriting_inputs({"--out": out, "its per-cell table": cells_table_path(out), "its failure list": failures_path(out)},
                              {"--sample": sample, "--images": images, "--model": run, "--masks": masks})
    rows = read_sample_submission(sample)
    batch = KeepGoing(fail_fast)
    for image_id, problem in _images_missing(rows, images):
        batch.add(image_id, problem)
    settings = read_run_settings(run)
    pcfg = cfg.predict
    if masks is not None:
        record_mask_settings(Path(masks), cfg.segment)
        remove_stale_temp_files(masks)
    key = journal_key(run, settings, cfg, pcfg.engine, None if masks is None else str(masks))
    journal = journal_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in (out.name, cells_table_path(out).name, failures_path(out).name):
        remove_stale_temp_files(out.parent, name)
    if force:
        journal.unlink(missing_ok=True)
    records = read_journal(journal, key)
    skipped = {image_id for image_id, _ in batch.failures}
    todo = [r.image_id for r in rows if r.image_id not in records and r.image_id not in skipped]
    sizes = {r.image_id: (r.height, r.width) for r in rows}
    if todo:
        run_engine, run_image_engine, whole_size = load_engines(run, settings, pcfg)
        spec = PrepareSpec(str(images), None if masks is None else str(masks), cfg.segment, settings.crops,
                           settings.size, settings.channels, whole_size)
        n_workers = pcfg.workers if workers is None else workers
        log = Journal(journal, key)
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="predict", unit="img", disable=not progress)

        def good_images(stream):
            for item in stream:
                problem = item.problem if isinstance(item, FailedImage) else _size_problem(item, sizes[item.image_id])
                if problem is None:
                    yield item
                    continue
                batch.add(item.image_id, problem)
                bar.update()

        try:
            stream = good_images(prepared_stream(todo, spec, n_workers, pcfg.prefetch))
            for scored in score_stream(stream, run_engine, effective_batch_size(pcfg), run_image_engine):
                record = journal_record(scored)
                log.append(record)
                records[scored.image.image_id] = record
                bar.update()
        finally:
            bar.close()
            log.close()
    failures = batch.sorted([r.image_id for r in rows])
    if not allow_failures:
        batch.raise_failures(len(rows), [r.image_id for r in rows])
    submission: dict[str, list] = {}
    finals: dict[str, np.ndarray] = {}
    for row in rows:
        if row.image_id in records:
            submission[row.image_id], finals[row.image_id] = predictions_of(records[row.image_id], pcfg)
    write_submission(out, rows, submission)
    table = cells_table_path(out)
    _write_cells_table(table, [r for r in rows if r.image_id in records], records, finals)
    report = validate_submission(out, sample)
    if report.errors:
        raise InputError(f"{out} failed validation: {report.errors[0]}")
    if failures:
        write_failures(failures_path(out), failures)  # the journal stays: a re-run does only these
    else:
        failures_path(out).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
    return {"submission": str(out), "cells_table": str(table), "images": len(rows),
            "cells": sum(len(r["cell_ids"]) for r in records.values()), "new_images": len(todo), "failures": failures}


def effective_batch_size(pcfg: PredictConfig) -> int:
    """predict.batch_size, capped at predict.cpu_batch_size when TensorFlow sees no GPU."""
    if tf.config.list_physical_devices("GPU"):
        return pcfg.batch_size
    return max(1, min(pcfg.batch_size, pcfg.cpu_batch_size))


def _size_problem(image: PreparedImage, expected: tuple[int, int]) -> Optional[str]:
    """None, or why an image's size differs from the sample submission's (height, width)."""
    if (image.height, image.width) == expected:
        return None
    return (f"image {image.image_id} is {image.width}x{image.height} px but the sample submission says "
            f"{expected[1]}x{expected[0]}")
