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

import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from scipy import ndimage

from .classes import NEGATIVE, NUM_CLASSES
from .config import Config, CropConfig, PredictConfig, SegmentConfig, config_to_dict, load_config
from .errors import BatchFailures, InputError, describe
from .io import (CELL_TABLE_SUFFIX, SampleRow, atomic_write_text, file_sha256, list_image_ids, read_rgby, read_sample_submission,
                 remove_stale_temp_files, settings_hash)

JOURNAL_SUFFIX = ".journal.jsonl"
FAILURES_SUFFIX = ".failures.csv"


# ----------------------------------------------------------------------------- preparing images


@dataclass(frozen=True)
class PrepareSpec:
    """What a worker needs to prepare one image (picklable)."""

    images: str
    masks: Optional[str]  # mask cache folder; None = segment in memory
    segment: SegmentConfig
    crops: CropConfig  # the training run's crop settings
    model_size: int  # the model's input side, px
    channels: int
    whole_size: Optional[int]  # side of the whole-image input (image_score: whole), None = no whole pass


@dataclass
class PreparedImage:
    """One image ready for the model.

    crops: uint8 N x S x S x C; whole: uint8 S x S x C or None; cell_ids: int (N,);
    boxes: int (N, 4) top, left, bottom, right in px; tokens: N mask tokens; height, width in px;
    blue: float (N,) mean blue (nucleus) signal of each cell in [0, 1].
    """

    image_id: str
    height: int
    width: int
    crops: np.ndarray
    whole: Optional[np.ndarray]
    cell_ids: np.ndarray
    boxes: np.ndarray
    tokens: list[str]
    blue: np.ndarray


def prepare_image(spec: PrepareSpec, image_id: str) -> PreparedImage:
    """Read, segment (or read cached masks), crop and encode one image."""
    from .crops import model_crops, whole_image
    from .encode import encode_label_image
    from .segment import cached_segmentation

    rgby = read_rgby(spec.images, image_id)
    seg = cached_segmentation(rgby, image_id, spec.masks, spec.segment)  # a mask of another size is redone
    crops = model_crops(rgby, seg.cells, spec.crops, spec.model_size, image_id, spec.channels)
    tokens = encode_label_image(seg.cells)
    whole = whole_image(rgby, spec.whole_size, spec.channels) if spec.whole_size else None
    blue = np.asarray(ndimage.mean(rgby[..., 2], seg.cells, crops.cell_ids), np.float64).reshape(-1)
    return PreparedImage(image_id, rgby.shape[0], rgby.shape[1], crops.crops, whole, crops.cell_ids, crops.boxes,
                         [tokens[int(c)] for c in crops.cell_ids], blue)


@dataclass(frozen=True)
class FailedImage:
    """An image that could not be prepared: its ID and what went wrong (one line)."""

    image_id: str
    problem: str


def prepare_or_fail(spec: PrepareSpec, image_id: str) -> PreparedImage | FailedImage:
    """`prepare_image`, or a FailedImage naming the problem (any error: the batch goes on)."""
    try:
        return prepare_image(spec, image_id)
    except Exception as error:  # noqa: BLE001 - reported per image by the caller
        return FailedImage(image_id, describe(error))


def prepared_stream(ids: list[str], spec: PrepareSpec, workers: int, prefetch: int) -> Iterator[PreparedImage | FailedImage]:
    """PreparedImage of each ID, in order; `workers` spawned processes keep `prefetch` images ahead.

    workers 0 prepares in the calling process. Processes are spawned, not forked, because the
    caller has TensorFlow threads running.
    """
    if workers <= 0 or len(ids) <= 1:
        for image_id in ids:
            yield prepare_or_fail(spec, image_id)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    window = max(prefetch, workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        queued: deque = deque()
        pending = iter(ids)
        for image_id in pending:
            queued.append(pool.submit(prepare_or_fail, spec, image_id))
            if len(queued) >= window:
                break
        while queued:
            result = queued.popleft().result()
            nxt = next(pending, None)
            if nxt is not None:
                queued.append(pool.submit(prepare_or_fail, spec, nxt))
            yield result


# ----------------------------------------------------------------------------- engines


class KerasEngine:
    """The Keras model as a compiled function: float32 B x S x S x C in [0, 255] -> B x 19."""

    def __init__(self, model_path: str | Path):
        import tensorflow as tf

        from .model import load_classifier

        self.model = load_classifier(model_path)
        shape = tuple(self.model.input_shape[1:])
        self.input_shape = shape
        self._call = tf.function(lambda x: self.model(x, training=False),
                                 input_signature=[tf.TensorSpec((None, *shape), tf.float32)])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch.astype(np.float32, copy=False)))


class OnnxEngine:
    """ONNX Runtime session of RUNDIR/model.onnx (made by `hpa-scc export`); same contract as KerasEngine."""

    def __init__(self, run: str | Path, threads: int = 0):
        import onnxruntime as ort

        run = Path(run)
        path, info_path = run / "model.onnx", run / "model.onnx.json"
        if not path.is_file():
            raise InputError(f"{path} does not exist: run `hpa-scc export --model {run}` first")
        if info_path.is_file() and (run / "model.keras").is_file():
            recorded = json.loads(info_path.read_text()).get("keras_sha256")
            if recorded != file_sha256(run / "model.keras"):
                raise InputError(f"{path} was exported from another model.keras: run `hpa-scc export --model {run}` again")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise InputError(f"{path} is not a loadable ONNX model ({type(exc).__name__})") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = tuple(model_input.shape[1:])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})[0]


def load_engine(run: str | Path, engine: str):
    """KerasEngine (RUNDIR/model.keras) or OnnxEngine (RUNDIR/model.onnx)."""
    run = Path(run)
    if engine == "onnx":
        return OnnxEngine(run)
    return KerasEngine(run / "model.keras")


def with_tta(engine: Callable[[np.ndarray], np.ndarray], rot90: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Average of the engine over the batch, its horizontal and its vertical flip; with `rot90`,
    over all 8 flips and 90-degree turns of the batch (B x S x S x C)."""

    def flips(batch: np.ndarray) -> np.ndarray:
        return (engine(batch) + engine(batch[:, :, ::-1]) + engine(batch[:, ::-1])) / 3.0

    def dihedral(batch: np.ndarray) -> np.ndarray:
        views = [np.rot90(batch, k, axes=(1, 2)) for k in range(4)]
        views += [view[:, :, ::-1] for view in views]
        return sum(engine(np.ascontiguousarray(view)) for view in views) / len(views)

    return dihedral if rot90 else flips


# ----------------------------------------------------------------------------- streaming


@dataclass
class ScoredImage:
    """Raw model output of one image: cell_probs float32 N x 19; image_probs float32 (19,) or None.

    `remaining` counts the inputs still queued in a batch; the image is complete at 0.
    """

    image: PreparedImage
    cell_probs: np.ndarray
    image_probs: Optional[np.ndarray]
    remaining: int = 0


class _Batcher:
    """Fills fixed-size batches with inputs of consecutive images and writes the outputs back."""

    def __init__(self, engine: Callable[[np.ndarray], np.ndarray], batch_size: int):
        self.engine, self.batch_size = engine, batch_size
        self.inputs: list[np.ndarray] = []
        self.targets: list[tuple[ScoredImage, int]] = []

    def add(self, item: np.ndarray, scored: ScoredImage, row: int) -> None:
        """Queue one input for cell `row` of `scored` (row -1: its whole-image input)."""
        self.inputs.append(item)
        self.targets.append((scored, row))
        scored.remaining += 1
        if len(self.inputs) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Run the queued inputs, padded to the batch size (one compiled shape), and store outputs."""
        if not self.inputs:
            return
        batch = np.zeros((self.batch_size, *self.inputs[0].shape), np.float32)
        np.stack(self.inputs, out=batch[: len(self.inputs)])
        out = self.engine(batch)
        for k, (scored, row) in enumerate(self.targets):
            if row < 0:
                scored.image_probs[:] = out[k]
            else:
                scored.cell_probs[row] = out[k]
            scored.remaining -= 1
        self.inputs, self.targets = [], []


def score_stream(prepared: Iterable[PreparedImage], engine: Callable[[np.ndarray], np.ndarray], batch_size: int,
                 image_engine: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> Iterator[ScoredImage]:
    """Run every crop (and whole image, when prepared) through the engines; yields images in order.

    Cell crops of consecutive images share batches; whole-image inputs go to `image_engine`
    (default: the same engine) in batches of their own. An image is yielded once all its rows are back.
    """
    cells = _Batcher(engine, batch_size)
    wholes = _Batcher(image_engine or engine, batch_size)
    waiting: deque[ScoredImage] = deque()

    def finished() -> Iterator[ScoredImage]:
        while waiting and waiting[0].remaining == 0:
            yield waiting.popleft()

    for image in prepared:
        scored = ScoredImage(image, np.zeros((len(image.cell_ids), NUM_CLASSES), np.float32),
                             np.zeros(NUM_CLASSES, np.float32) if image.whole is not None else None)
        waiting.append(scored)
        if image.whole is not None:
            wholes.add(image.whole, scored, -1)
        for k in range(len(image.cell_ids)):
            cells.add(image.crops[k], scored, k)
        yield from finished()
    cells.flush()
    wholes.flush()
    yield from finished()


# ----------------------------------------------------------------------------- scores


def image_level(cell_probs: np.ndarray, whole_probs: Optional[np.ndarray], how: str) -> np.ndarray:
    """Image-level probabilities: (19,) from the whole-image pass or the mean / max over the cells,
    or N x 19 for `others_mean` (each cell: the mean of the other cells; a lone cell: its own)."""
    if how == "whole":
        if whole_probs is None:
            raise InputError("predict.image_score whole needs the whole-image pass")
        return whole_probs
    if len(cell_probs) == 0:
        return np.zeros(NUM_CLASSES, np.float32)
    if how == "others_mean":
        if len(cell_probs) == 1:
            return cell_probs.copy()
        return (cell_probs.sum(axis=0, keepdims=True) - cell_probs) / (len(cell_probs) - 1)
    return cell_probs.max(axis=0) if how == "cell_max" else cell_probs.mean(axis=0)


def blend(cell_probs: np.ndarray, image_probs: np.ndarray, cfg: PredictConfig) -> np.ndarray:
    """Final per-cell probabilities N x 19 from cell (N x 19) and image (19,) or N x 19 probabilities.

    linear: w * cell + (1 - w) * image; product: cell**w * image**(1 - w) (a weighted geometric
    mean); w = cfg.cell_weight, so w = 0 broadcasts the image prediction to every cell.
    Negative `derived`: 1 - the highest of the 18 other blended probabilities.
    """
    w = cfg.cell_weight
    cell_probs = np.asarray(cell_probs, np.float64)
    image_probs = np.asarray(image_probs, np.float64)
    image_probs = image_probs[None] if image_probs.ndim == 1 else image_probs
    if cfg.blend == "product":
        out = np.power(cell_probs, w) * np.power(image_probs, 1.0 - w)
    else:
        out = w * cell_probs + (1.0 - w) * image_probs
    out = np.clip(out, 0.0, 1.0)
    if cfg.negative == "derived" and len(out):
        out[:, NEGATIVE] = 1.0 - np.delete(out, NEGATIVE, axis=1).max(axis=1)
    return out


def cell_rules(final: np.ndarray, record: dict, cfg: PredictConfig) -> np.ndarray:
    """Down-weight the final scores (N x 19) of cells touching the image edge (`border_weight`)
    and of faint cells (`faint_weight`: mean blue below `faint_fraction` x the image's median cell)."""
    out = np.array(final, np.float64, copy=True)
    if not len(out):
        return out
    if cfg.border_weight < 1.0:
        boxes = np.asarray(record["boxes"]).reshape(-1, 4)
        edge = ((boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 2] >= record["height"]) | (boxes[:, 3] >= record["width"]))
        out[edge] *= cfg.border_weight
    if cfg.faint_weight < 1.0 and record.get("blue") is not None:
        blue = np.asarray(record["blue"], np.float64)
        out[blue < cfg.faint_fraction * np.median(blue)] *= cfg.faint_weight
    return out


# ----------------------------------------------------------------------------- journal (resume)


def journal_path(out: str | Path) -> Path:
    return Path(str(out) + JOURNAL_SUFFIX)


def cells_table_path(out: str | Path) -> Path:
    return Path(str(out)).with_suffix(CELL_TABLE_SUFFIX)


def _read_journal(path: Path, key: str) -> dict[str, dict]:
    """Records of finished images from a journal; drops a torn last line; InputError on a key mismatch."""
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):  # a kill in the middle of a line: cut it off
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return {}
    try:
        header = json.loads(lines[0])
        records = [json.loads(line) for line in lines[1:]]
    except json.JSONDecodeError:
        raise InputError(f"{path} is corrupt: delete it to start the prediction again") from None
    if header.get("key") != key:
        raise InputError(f"{path} was made with another model or settings: delete it (or use --force) to start again")
    return {r["id"]: r for r in records}


def _record(scored: ScoredImage) -> dict:
    image = scored.image
    return {"id": image.image_id, "height": image.height, "width": image.width,
            "cell_ids": image.cell_ids.tolist(), "boxes": image.boxes.tolist(), "tokens": image.tokens,
            "blue": [round(float(b), 6) for b in image.blue],
            "cell": scored.cell_probs.astype(float).tolist(),
            "image": None if scored.image_probs is None else scored.image_probs.astype(float).tolist()}


class _Journal:
    """Append-only JSON-lines file: a header with the settings key, then one line per finished image."""

    def __init__(self, path: Path, key: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.is_file() or path.stat().st_size == 0
        self.handle = open(path, "a", encoding="utf-8")
        if fresh:
            self.append({"key": key})

    def append(self, value: dict) -> None:
        """Write one line and make it durable before returning."""
        self.handle.write(json.dumps(value, separators=(",", ":")) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


# ----------------------------------------------------------------------------- submission


@dataclass(frozen=True)
class RunSettings:
    """A training run's crop and model settings (from RUNDIR/config.yaml)."""

    crops: CropConfig
    channels: int
    size: int


def read_run_settings(run: str | Path) -> RunSettings:
    """Crop/model settings of a training run; InputError when RUNDIR is not one."""
    run = Path(run)
    if not (run / "model.keras").is_file():
        raise InputError(f"{run} is not a training run: {run / 'model.keras'} is missing")
    cfg = load_config(run / "config.yaml") if (run / "config.yaml").is_file() else Config()
    return RunSettings(cfg.crops, cfg.model.channels, cfg.model.size)


def journal_key(run: Path, settings: RunSettings, cfg: Config, engine: str, masks: Optional[str]) -> str:
    """Hash of what changes the raw probabilities in a journal (not the blend)."""
    values = {"model": file_sha256(run / "model.keras"), "crops": config_to_dict(settings.crops), "size": settings.size,
              "channels": settings.channels, "segment": config_to_dict(cfg.segment) if masks is None else str(masks),
              "engine": engine, "tta": cfg.predict.tta, "image_score": cfg.predict.image_score,
              **({"tta_rot90": True} if cfg.predict.tta and cfg.predict.tta_rot90 else {}),
              "image_model": file_sha256(Path(cfg.predict.image_model) / "model.keras") if cfg.predict.image_model else None}
    return settings_hash(values)


def predictions_of(record: dict, cfg: PredictConfig) -> tuple[list, np.ndarray]:
    """(submission Predictions, blended N x 19) of one journal record."""
    from .submission import Prediction

    cell_probs = np.asarray(record["cell"], np.float32).reshape(-1, NUM_CLASSES)
    whole = None if record["image"] is None else np.asarray(record["image"], np.float32)
    final = cell_rules(blend(cell_probs, image_level(cell_probs, whole, cfg.image_score), cfg), record, cfg)
    predictions = [Prediction(label, float(final[k, label]), token)
                   for k, token in enumerate(record["tokens"]) for label in range(NUM_CLASSES)
                   if final[k, label] >= cfg.min_confidence]
    return predictions, final


def _write_cells_table(path: Path, rows: list[SampleRow], records: dict[str, dict], finals: dict[str, np.ndarray]) -> None:
    from .io import atomic_path

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
    import csv
    import io as string_io

    buffer = string_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ID", "problem"])
    writer.writerows(failures)
    atomic_write_text(path, buffer.getvalue())
    return path


def failures_path(out: str | Path) -> Path:
    return Path(str(out)).with_suffix(FAILURES_SUFFIX)


def _load_engines(run: Path, settings: RunSettings, pcfg: PredictConfig):
    """(cell engine, image engine or None, whole-image input side or None), TTA-wrapped when configured;
    InputError when a model's input does not match the run's settings."""
    engine = load_engine(run, pcfg.engine)
    if engine.input_shape[-1] != settings.channels or engine.input_shape[0] != settings.size:
        raise InputError(f"{run}: model input {engine.input_shape} does not match config.yaml "
                         f"({settings.size} px, {settings.channels} channels)")
    image_engine = load_engine(pcfg.image_model, pcfg.engine) if pcfg.image_model else None
    if image_engine is not None and image_engine.input_shape[-1] != settings.channels:
        raise InputError(f"image model {pcfg.image_model} takes {image_engine.input_shape[-1]} channels, "
                         f"the cell model {settings.channels}")
    whole_size = (image_engine or engine).input_shape[0] if pcfg.image_score == "whole" else None
    if pcfg.tta:
        engine = with_tta(engine, pcfg.tta_rot90)
        image_engine = with_tta(image_engine, pcfg.tta_rot90) if image_engine is not None else None
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
    from tqdm import tqdm

    from .segment import record_mask_settings
    from .submission import write_submission, validate_submission

    run, images, out = Path(run), Path(images), Path(out)
    rows = read_sample_submission(sample)
    failures = _images_missing(rows, images)
    if failures and fail_fast:
        raise InputError(failures[0][1])
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
    records = _read_journal(journal, key)
    skipped = {image_id for image_id, _ in failures}
    todo = [r.image_id for r in rows if r.image_id not in records and r.image_id not in skipped]
    sizes = {r.image_id: (r.height, r.width) for r in rows}
    if todo:
        run_engine, run_image_engine, whole_size = _load_engines(run, settings, pcfg)
        spec = PrepareSpec(str(images), None if masks is None else str(masks), cfg.segment, settings.crops,
                           settings.size, settings.channels, whole_size)
        n_workers = pcfg.workers if workers is None else workers
        log = _Journal(journal, key)
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="predict", unit="img", disable=not progress)

        def good_images(stream):
            for item in stream:
                problem = item.problem if isinstance(item, FailedImage) else _size_problem(item, sizes[item.image_id])
                if problem is None:
                    yield item
                    continue
                if fail_fast:
                    raise InputError(problem)
                failures.append((item.image_id, problem))
                bar.update()

        try:
            stream = good_images(prepared_stream(todo, spec, n_workers, pcfg.prefetch))
            for scored in score_stream(stream, run_engine, effective_batch_size(pcfg), run_image_engine):
                record = _record(scored)
                log.append(record)
                records[scored.image.image_id] = record
                bar.update()
        finally:
            bar.close()
            log.close()
    order = {r.image_id: k for k, r in enumerate(rows)}
    failures.sort(key=lambda f: order[f[0]])
    if failures and not allow_failures:
        raise BatchFailures(failures, len(rows))
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
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return pcfg.batch_size
    return max(1, min(pcfg.batch_size, pcfg.cpu_batch_size))


def _size_problem(image: PreparedImage, expected: tuple[int, int]) -> Optional[str]:
    """None, or why an image's size differs from the sample submission's (height, width)."""
    if (image.height, image.width) == expected:
        return None
    return (f"image {image.image_id} is {image.width}x{image.height} px but the sample submission says "
            f"{expected[1]}x{expected[0]}")
