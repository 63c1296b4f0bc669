"""Training on weak image-level labels.

    hpa-scc train --config configs/demo.yaml --images data/demo/train --labels data/demo/train.csv \
        --masks data/demo/masks --out runs/demo

Modes: `cells` (each cell crop inherits its image's labels: the weak setting), `image` (the
whole image resized), `truth` (per-cell labels from an ID,cell_id,Label table), `mil` (bags of
an image's cells whose pooled per-cell outputs the image labels supervise; see `make_bag_dataset`
and `_bag_model_class`). Optional pseudo-label rounds relabel every training cell with the
previous model (see `pseudo_labels`), or out of fold with `train.pseudo_folds` (see `train_oof`).
Input pipeline: tf.data over a generator that reads one image's cached crops at a time
(shuffle buffer, parallel augmentation, batch, prefetch), so the data set never has to fit in RAM.
RUNDIR gets model.keras (best val loss), last.keras + state.json (resume), config.yaml,
history.csv, curves.png, val_per_class.csv. Re-running into the same RUNDIR resumes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .classes import NEGATIVE, NUM_CLASSES, to_multi_hot
from .config import Config, save_config
from .crops import load_or_make_crops, whole_image
from .errors import BatchFailures, InputError, describe
from .io import (RecentlyUsed, atomic_write_text, read_cell_labels, read_labels, read_rgby, remove_stale_temp_files,
                 write_cell_labels, write_labels)


@dataclass
class Example:
    """One training item: a cell crop (cell_index >= 0 into the image's crops; cell_id its mask
    label) or a whole image (-1), and its target (19,)."""

    image_id: str
    cell_index: int
    target: np.ndarray
    cell_id: int = -1


def _cell_examples(mode: str, image_id: str, image_labels: tuple[int, ...], rows, cell_ids,
                   cell_labels: Optional[dict]) -> list[Example]:
    """One Example per cell: row k of the image's crops (or of its shard), target per `mode`."""
    examples = []
    for row, cell_id in zip(rows, cell_ids):
        cell_id = int(cell_id)
        if mode == "truth":
            if (image_id, cell_id) not in cell_labels:
                raise InputError(f"cell labels lack image {image_id} cell {cell_id}")
            target = to_multi_hot(cell_labels[(image_id, cell_id)])
        else:
            target = to_multi_hot(image_labels)
        examples.append(Example(image_id, int(row), target, cell_id))
    return examples


def _check_mode(mode: str, cell_labels: Optional[dict]) -> None:
    if mode == "truth" and not cell_labels:
        raise InputError("train.mode truth needs a per-cell label table (--cell-labels ID,cell_id,Label)")


def make_examples(cfg: Config, images: Path, labels: dict[str, tuple[int, ...]], masks: Path,
                  cell_labels: Optional[dict] = None, cache: Optional[Path] = None,
                  failures: Optional[list] = None) -> list[Example]:
    """Examples of every image in `labels` for the configured mode (crops cached under `cache`).

    failures: a list to which each image whose crops cannot be made is appended as (ID, problem),
    and skipped; None = raise at the first one.
    """
    from tqdm import tqdm

    mode = cfg.train.mode
    _check_mode(mode, cell_labels)
    examples: list[Example] = []
    for image_id, image_labels in tqdm(labels.items(), desc="crops", unit="img", leave=False):
        if mode == "image":
            examples.append(Example(image_id, -1, to_multi_hot(image_labels)))
            continue
        try:
            crops = load_or_make_crops(images, masks, image_id, cfg.crops, cfg.model.size, cache, cfg.model.channels)
        except Exception as error:  # noqa: BLE001 - one bad image never stops the others
            if failures is None:
                raise
            failures.append((image_id, describe(error)))
            continue
        n = min(len(crops.cell_ids), cfg.train.max_cells_per_image)
        examples += _cell_examples(mode, image_id, image_labels, range(n), crops.cell_ids[:n], cell_labels)
    if not examples:
        raise InputError(f"no training examples: no cells found for the images in {images}")
    return examples


def prepared_examples(cfg: Config, prepared: Path, index: dict, labels: dict[str, tuple[int, ...]],
                      cell_labels: Optional[dict] = None) -> list[Example]:
    """Examples of the images in `labels` from a prepared set (`hpa-scc prepare`); cell_index is the
    crop's row in its shard. Images the preparation could not read are left out, with a warning."""
    import warnings

    from .prepare import prepared_cells

    mode = cfg.train.mode
    if mode == "image":
        raise InputError("train --prepared holds cell crops; train.mode image reads whole images (drop --prepared)")
    _check_mode(mode, cell_labels)
    examples: list[Example] = []
    seen = set()
    for image_id, rows, cell_ids in prepared_cells(prepared, index):
        if image_id in labels:
            n = min(len(rows), cfg.train.max_cells_per_image)
            examples += _cell_examples(mode, image_id, labels[image_id], rows[:n], cell_ids[:n], cell_labels)
            seen.add(image_id)
    missing = [i for i in labels if i not in seen]
    if missing:
        warnings.warn(f"{len(missing)} image(s) of the labels are not in {prepared} (failed or not prepared), "
                      f"e.g. {missing[0]}; training without them")
    if not examples:
        raise InputError(f"no training examples: no cells of the labelled images in {prepared}")
    return examples


def split_by_image(labels: dict[str, tuple[int, ...]], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Validation split by image, stratified on each image's rarest label where possible."""
    from sklearn.model_selection import train_test_split

    ids = sorted(labels)
    if fraction <= 0 or len(ids) < 4:
        return ids, []
    counts = np.bincount([c for labs in labels.values() for c in labs], minlength=NUM_CLASSES)
    strata = [min(labels[i], key=lambda c: counts[c]) for i in ids]
    n_val = max(1, int(round(len(ids) * fraction)))
    try:
        train, val = train_test_split(ids, test_size=n_val, random_state=seed, stratify=strata)
    except ValueError:  # a stratum with one member
        train, val = train_test_split(ids, test_size=n_val, random_state=seed)
    return sorted(train), sorted(val)


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


def input_statistics(examples: list[Example], source: CropSource, size: int, limit: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) of the model's input pixels, in [0, 1] units, each (C,), from up
    to `limit` examples spread evenly over the list (deterministic)."""
    picks = np.unique(np.linspace(0, len(examples) - 1, min(limit, len(examples))).astype(int))
    pixels = np.stack([source.pixels(examples[i]) for i in picks]).astype(np.float64) / 255.0
    flat = pixels.reshape(-1, pixels.shape[-1])
    return flat.mean(axis=0), flat.std(axis=0)


def make_dataset(examples: list[Example], source: CropSource, cfg: Config, training: bool):
    """tf.data pipeline: generator (grouped by image) -> shuffle -> augment -> batch -> prefetch."""
    import tensorflow as tf

    size, channels = cfg.model.size, cfg.model.channels
    seed = cfg.train.seed

    passes = iter(range(1 << 30))  # a new image order on every pass (epoch) over the data

    def generate():
        rng = np.random.default_rng([seed, next(passes)])
        indices = list(range(len(examples)))  # evaluation: in the given order (grouped by image)
        if training:  # shuffled within windows of what the source holds in memory, for cheap reads
            indices = windowed_order(indices, lambda i: source.group(examples[i]), source.capacity, rng)
        for i in indices:
            yield source.pixels(examples[i]), examples[i].target

    spec = (tf.TensorSpec((size, size, channels), tf.uint8), tf.TensorSpec((NUM_CLASSES,), tf.float32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = ds.shuffle(min(1024, len(examples)), seed=seed)
        if cfg.train.augment.enabled and cfg.train.augment.rot90:
            ds = ds.map(lambda x, y: (tf.image.rot90(x, tf.random.uniform((), 0, 4, tf.int32, seed=seed)), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
        augment = make_augmenter(cfg)
        if augment is not None:
            ds = ds.batch(cfg.train.batch_size).map(lambda x, y: (augment(x, training=True), y),
                                                     num_parallel_calls=tf.data.AUTOTUNE)
            return ds.prefetch(tf.data.AUTOTUNE)
    return ds.batch(cfg.train.batch_size).prefetch(tf.data.AUTOTUNE)


def _bags_per_batch(cfg: Config) -> int:
    return max(1, cfg.train.batch_size // cfg.train.mil_bag_size)


def bag_steps(examples: list[Example], cfg: Config) -> int:
    """Batches in one epoch of `make_bag_dataset`: ceil(n / K) bags per image, B bags a batch."""
    per_image = np.unique([e.image_id for e in examples], return_counts=True)[1]
    bags = int(np.sum(-(-per_image // cfg.train.mil_bag_size)))
    return -(-bags // _bags_per_batch(cfg))


def make_bag_dataset(examples: list[Example], source: CropSource, cfg: Config):
    """tf.data of MIL bags for training: (float32 B x K x S x S x C in [0, 255], {"image": B x 19,
    "cells": B x K x 19}) with K = train.mil_bag_size and B = max(1, batch_size // K) images.

    Each epoch every image's cells are shuffled and dealt into ceil(n / K) bags (the last one
    filled up with repeats), so an epoch sees every cell once, like `cells` mode; the bags of all
    images are shuffled so that a batch mixes images (BatchNormalization's batch statistics of a
    batch from one or two images differ from the moving statistics used at inference, and MIL then
    fails to learn). A bag's image target is the union of its image's cell targets.
    """
    import tensorflow as tf

    size, channels, k = cfg.model.size, cfg.model.channels, cfg.train.mil_bag_size
    by_image: dict[str, list[Example]] = {}
    for example in examples:
        by_image.setdefault(example.image_id, []).append(example)
    passes = iter(range(1 << 30))

    def generate():
        rng = np.random.default_rng([cfg.train.seed, next(passes)])
        bags = []
        for key, cells in by_image.items():
            order = rng.permutation(len(cells))
            fill = (-len(order)) % k
            order = np.concatenate([order, rng.choice(len(cells), fill, replace=fill > len(cells))])
            bags += [(key, order[i:i + k]) for i in range(0, len(order), k)]
        for key, pick in windowed_order(bags, lambda bag: source.group(by_image[bag[0]][0]), source.capacity, rng):
            cells = by_image[key]
            bag = np.stack([source.pixels(cells[i]) for i in pick])
            yield bag, np.max([c.target for c in cells], axis=0), np.stack([cells[i].target for i in pick])

    spec = (tf.TensorSpec((k, size, size, channels), tf.uint8), tf.TensorSpec((NUM_CLASSES,), tf.float32),
            tf.TensorSpec((k, NUM_CLASSES), tf.float32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    ds = ds.map(lambda x, y, c: (tf.cast(x, tf.float32), y, c), num_parallel_calls=tf.data.AUTOTUNE)
    if cfg.train.augment.enabled and cfg.train.augment.rot90:  # one turn per bag
        ds = ds.map(lambda x, y, c: (tf.image.rot90(x, tf.random.uniform((), 0, 4, tf.int32, seed=cfg.train.seed)), y, c),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(_bags_per_batch(cfg))
    augment = make_augmenter(cfg)

    def finish(x, y, c):
        if augment is not None:
            x = tf.reshape(augment(tf.reshape(x, (-1, size, size, channels)), training=True), (-1, k, size, size, channels))
        return x, {"image": y, "cells": c}

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


@functools.cache
def _bag_model_class():
    """The BagModel class (multiple-instance training), defined on first use (no Keras at import)."""
    import keras
    from keras import layers, ops

    class BagModel(keras.Model):
        """Bags B x K x S x S x C -> {"cells": B x K x 19 per-cell probabilities of `classifier`,
        "image": B x 19 pooled over the bag}. Trains the classifier's own weights; only the
        classifier is saved (the attention layers serve training only)."""

        def __init__(self, classifier, pooling: str, lse_r: float, **kwargs):
            super().__init__(**kwargs)
            self.classifier = classifier
            self.features = keras.Model(classifier.inputs, classifier.layers[-2].output)
            self.head = classifier.layers[-1]
            self.pooling, self.lse_r = pooling, lse_r
            if pooling == "attention":
                self.attention_hidden = layers.Dense(64, activation="tanh")
                self.attention_score = layers.Dense(NUM_CLASSES)

        def call(self, bags, training=False):
            k = bags.shape[1]
            features = self.features(ops.reshape(bags, (-1,) + tuple(bags.shape[2:])), training=training)
            cells = ops.reshape(self.head(features), (-1, k, NUM_CLASSES))
            return {"image": self.pool(cells, ops.reshape(features, (-1, k, features.shape[-1]))), "cells": cells}

        def pool(self, cells, features):
            """B x K x 19 cell probabilities (and B x K x F features) -> B x 19."""
            if self.pooling == "mean":
                return ops.mean(cells, axis=1)
            if self.pooling == "max":
                return ops.max(cells, axis=1)
            if self.pooling == "lse":  # (1/r) log mean exp(r * logit): mean (r -> 0) to max (r -> inf)
                p = ops.clip(cells, 1e-6, 1.0 - 1e-6)
                logits = ops.log(p) - ops.log1p(-p)
                k = float(cells.shape[1])
                return ops.sigmoid((ops.logsumexp(self.lse_r * logits, axis=1) - np.log(k)) / self.lse_r)
            weights = ops.softmax(self.attention_score(self.attention_hidden(features)), axis=1)  # per class
            return ops.sum(weights * cells, axis=1)

    return BagModel


def make_augmenter(cfg: Config):
    """Keras preprocessing layers with ImageDataGenerator-style parameters, or None if disabled."""
    import keras
    from keras import layers

    a = cfg.train.augment
    if not a.enabled:
        return None
    seed = cfg.train.seed
    steps = []
    if a.flip:
        steps.append(layers.RandomFlip("horizontal_and_vertical", seed=seed))
    if a.rotation:
        steps.append(layers.RandomRotation(a.rotation / 360.0, fill_mode="constant", seed=seed))
    if a.shift:
        steps.append(layers.RandomTranslation(a.shift, a.shift, fill_mode="constant", seed=seed))
    if a.zoom:
        steps.append(layers.RandomZoom((-a.zoom, a.zoom), fill_mode="constant", seed=seed))
    steps.append(RandomGain(a.brightness, seed=seed))
    return keras.Sequential(steps, name="augment")


@functools.cache
def _random_gain_class():
    """The RandomGain layer class, defined on first use so importing this module needs no Keras."""
    import keras

    class RandomGain(keras.layers.Layer):
        """Multiply each image by a gain drawn from [low, high] (brightness 0.5-1.5), clip to [0, 255]."""

        def __init__(self, bounds=(0.5, 1.5), seed=None, **kwargs):
            super().__init__(**kwargs)
            self.bounds = tuple(bounds)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=False):
            if not training:
                return x
            gain = keras.random.uniform((keras.ops.shape(x)[0], 1, 1, 1), *self.bounds, seed=self.seed_generator)
            return keras.ops.clip(x * gain, 0.0, 255.0)

    return RandomGain


def RandomGain(bounds, seed=None):  # noqa: N802 - a layer factory
    return _random_gain_class()(bounds, seed=seed)


def make_loss(cfg: Config, targets: np.ndarray):
    """Binary loss from config: bce, weighted_bce (positive weight from label counts) or focal."""
    import keras
    from keras import ops

    if cfg.train.loss == "bce":
        return keras.losses.BinaryCrossentropy()
    if cfg.train.loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=cfg.train.focal_gamma)
    positives = targets.sum(axis=0) + 1.0
    weights = np.clip((len(targets) - positives) / positives, 1.0, 50.0).astype("float32")

    def weighted_bce(y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        loss = -(weights * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred))
        return ops.mean(loss, axis=-1)

    return weighted_bce


def get_strategy(name: str):
    """tf.distribute strategy by name (default | mirrored | multiworker | tpu)."""
    import tensorflow as tf

    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def predict_examples(model, examples: list[Example], source: CropSource, cfg: Config) -> np.ndarray:
    """Model probabilities (N x 19) for examples, in order."""
    return model.predict(make_dataset(examples, source, cfg, training=False), verbose=0)


def pseudo_labels(examples: list[Example], scores: np.ndarray, keep: float, minimum: float) -> list[Example]:
    """Relabel cells: keep an image label on a cell where its score >= keep x the image's best
    score for that label and >= minimum; a cell that keeps none becomes Negative."""
    best: dict[tuple[str, int], float] = {}
    for ex, s in zip(examples, scores):
        for c in np.flatnonzero(ex.target):
            best[(ex.image_id, c)] = max(best.get((ex.image_id, c), 0.0), float(s[c]))
    out = []
    for ex, s in zip(examples, scores):
        target = np.zeros(NUM_CLASSES, np.float32)
        for c in np.flatnonzero(ex.target):
            if c != NEGATIVE and s[c] >= minimum and s[c] >= keep * best[(ex.image_id, c)]:
                target[c] = 1.0
        if not target.any():
            target[NEGATIVE] = 1.0
        out.append(Example(ex.image_id, ex.cell_index, target, ex.cell_id))
    return out


def per_class_metrics(targets: np.ndarray, probs: np.ndarray) -> list[dict]:
    """Per-class AUC (None where a class has one value only), F1 at 0.5 and support."""
    from sklearn.metrics import f1_score, roc_auc_score

    rows = []
    for c in range(NUM_CLASSES):
        y = targets[:, c]
        auc = float(roc_auc_score(y, probs[:, c])) if 0 < y.sum() < len(y) else None
        f1 = float(f1_score(y, probs[:, c] >= 0.5, zero_division=0)) if y.sum() else None
        rows.append({"class": c, "auc": auc, "f1": f1, "support": int(y.sum())})
    return rows


def _save_atomic(model, path: Path) -> None:
    """model.save through a temp file + rename, so a kill never leaves a half-written .keras file."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        model.save(tmp)


def macro_auc(targets: np.ndarray, probs: np.ndarray) -> float:
    """Mean ROC AUC over the classes that have both positives and negatives (NaN if none)."""
    aucs = [row["auc"] for row in per_class_metrics(targets, probs) if row["auc"] is not None]
    return float(np.mean(aucs)) if aucs else float("nan")


def _cosine_callback(base_lr: float, first_epoch: int, epochs: int, steps: int, warmup_epochs: float):
    """Sets the learning rate before every batch: linear warm-up, then cosine decay to 0 over
    the round's `epochs` (epoch indices are global, so a resumed round continues the curve)."""
    import math

    import keras

    total = max(1, epochs * steps)
    warmup = max(1, int(round(warmup_epochs * steps)))

    class CosineSchedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch - first_epoch

        def on_train_batch_begin(self, batch, logs=None):
            step = self.epoch * steps + batch
            lr = base_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            self.model.optimizer.learning_rate.assign(lr)

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    return CosineSchedule()


def _validation_callback(val_ds, val_targets: np.ndarray, loss_fn, classifier):
    """After each epoch, one inference pass of `classifier` over the validation set: logs val_loss
    and val_auc (per-cell macro AUC over the classes present, see `macro_auc`)."""
    import keras

    class Validation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probs = classifier.predict(val_ds, verbose=0)
            logs["val_loss"] = float(keras.ops.convert_to_numpy(keras.ops.mean(loss_fn(val_targets, probs))))
            logs["val_auc"] = macro_auc(val_targets, probs)

    return Validation()


def _fit_round(model, train_ds, steps: int, validation, run: Path, epochs: int, initial_epoch: int, cfg: Config,
               round_index: int, best: float, classifier=None) -> float:
    """Fit epochs [initial_epoch, epochs) (global indices); returns the best monitored value so far.

    validation: None or (val_ds, val_targets N x 19, loss function); steps: batches per epoch.
    classifier: the per-cell model that is validated and saved (default `model`; in mil mode the
    model fitted is the bag model around it, and model.keras is the last epoch's: the
    inherited-label validation loss does not measure what MIL optimises).
    """
    import keras

    classifier = model if classifier is None else classifier
    monitor = "val_loss" if validation is not None else "loss"
    keep_last = cfg.train.mode == "mil"

    class Checkpoints(keras.callbacks.Callback):
        """Best model (by `monitor`) to model.keras, every epoch to last.keras, then state.json."""

        def __init__(self):
            super().__init__()
            self.best = best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is not None and (value < self.best or keep_last):
                self.best = min(value, self.best)
                _save_atomic(classifier, run / "model.keras")
            _save_atomic(classifier, run / "last.keras")
            atomic_write_text(run / "state.json", json.dumps(
                {"round": round_index, "epoch": epoch + 1 - round_index * cfg.train.epochs, "best": float(self.best)}))

    checkpoints = Checkpoints()
    callbacks = [] if validation is None else [_validation_callback(*validation, classifier)]
    first_epoch = round_index * cfg.train.epochs
    if cfg.train.lr_schedule == "cosine":
        callbacks.append(_cosine_callback(cfg.train.learning_rate, first_epoch, cfg.train.epochs, steps,
                                          cfg.train.warmup_epochs))
    else:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=cfg.train.reduce_lr, factor=0.5))
    if cfg.train.early_stopping > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.train.early_stopping))
    callbacks += [keras.callbacks.CSVLogger(str(run / "history.csv"), append=True), checkpoints]
    model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=2)
    return checkpoints.best


def _trim_history(run: Path, completed_epochs: int) -> None:
    """Drop history.csv rows of epochs a kill interrupted after logging but before checkpointing."""
    path = run / "history.csv"
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    epoch_column = lines[0].rstrip("\n").split(",").index("epoch")
    keep = [lines[0]] + [line for line in lines[1:]
                         if line.endswith("\n") and int(line.split(",")[epoch_column]) < completed_epochs]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))


def train(cfg: Config, images: str | Path, labels_csv: str | Path, masks: str | Path, run: str | Path,
          cell_labels_csv: Optional[str | Path] = None, prepared: Optional[str | Path] = None,
          fail_fast: bool = False) -> dict:
    """Train per config; returns {"history": rows of history.csv, "val_per_class": [...]}.

    An image whose crops cannot be made (unreadable file, missing mask) is left out and training
    goes on; BatchFailures names them after the model is saved (fail_fast: stop at the first).

    prepared: a folder written by `hpa-scc prepare` with these settings: crops stream from its
    shards (`prepare.shards_in_memory` at a time) and no PNG is read; images and masks are unused.
    """
    import keras

    from .model import build_classifier, load_classifier

    if cfg.train.pseudo_rounds and cfg.train.pseudo_folds >= 2:
        if prepared is not None:
            raise InputError("out-of-fold pseudo-labels read the images' own crops; train them without --prepared")
        return train_oof(cfg, images, labels_csv, masks, run)
    images, masks, run = Path(images), Path(masks), Path(run)
    run.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(run)
    save_config(cfg, run / "config.yaml")
    keras.utils.set_random_seed(cfg.train.seed)
    labels = read_labels(labels_csv)
    cell_labels = read_cell_labels(cell_labels_csv) if cell_labels_csv else None
    train_ids, val_ids = split_by_image(labels, cfg.train.val_fraction, cfg.train.seed)
    failures: list[tuple[str, str]] = []
    if prepared is not None:
        from .prepare import ShardSource, read_index

        index = read_index(prepared, cfg)
        train_examples = prepared_examples(cfg, Path(prepared), index, {i: labels[i] for i in train_ids}, cell_labels)
        val_examples = prepared_examples(cfg, Path(prepared), index, {i: labels[i] for i in val_ids}, cell_labels) \
            if val_ids else []
        source = ShardSource(prepared, index, cfg.prepare.shards_in_memory)
    else:
        cache = masks / "crops"
        train_examples = make_examples(cfg, images, {i: labels[i] for i in train_ids}, masks, cell_labels, cache,
                                       None if fail_fast else failures)
        val_examples = make_examples(cfg, images, {i: labels[i] for i in val_ids}, masks, cell_labels, cache,
                                     None if fail_fast else failures) if val_ids else []
        source = CropSource(cfg, images, masks, cache)

    state = json.loads((run / "state.json").read_text()) if (run / "state.json").is_file() else {"round": 0, "epoch": 0}
    total_rounds = 1 + cfg.train.pseudo_rounds
    best = float(state.get("best", np.inf))
    strategy = get_strategy(cfg.train.strategy)
    print(f"strategy {cfg.train.strategy}: {strategy.num_replicas_in_sync} replica(s)")
    _trim_history(run, state["round"] * cfg.train.epochs + state["epoch"])
    with strategy.scope():
        if (run / "last.keras").is_file() and (state["round"] > 0 or state["epoch"] > 0):
            model = load_classifier(run / "last.keras")
            print(f"resuming {run}: round {state['round'] + 1}, after epoch {state['epoch']}")
        else:
            model = build_classifier(cfg.model, input_statistics(train_examples, source, cfg.model.size))
        targets = np.stack([e.target for e in train_examples])
        loss = make_loss(cfg, targets)
        fitted = model
        if cfg.train.mode == "mil":
            fitted = _bag_model_class()(model, cfg.train.mil_pooling, cfg.train.mil_lse_r)
            fitted.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate), loss={"image": loss, "cells": loss},
                           loss_weights={"image": 1.0, "cells": cfg.train.mil_cell_weight})
        else:
            model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate), loss=loss)
    validation = None
    if val_examples:
        validation = (make_dataset(val_examples, source, cfg, training=False),
                      np.stack([e.target for e in val_examples]), loss)
    for round_index in range(state["round"], total_rounds):
        examples = train_examples
        if round_index > 0:
            scores = predict_examples(model, train_examples, source, cfg)
            examples = pseudo_labels(train_examples, scores, cfg.train.pseudo_keep, cfg.train.pseudo_min)
        initial = state["epoch"] if round_index == state["round"] else 0
        first_epoch = round_index * cfg.train.epochs
        if initial < cfg.train.epochs:
            if cfg.train.mode == "mil":
                steps = bag_steps(examples, cfg)
                dataset = make_bag_dataset(examples, source, cfg)
            else:
                steps = -(-len(examples) // cfg.train.batch_size)
                dataset = make_dataset(examples, source, cfg, training=True)
            best = _fit_round(fitted, dataset, steps, validation, run, first_epoch + cfg.train.epochs,
                              first_epoch + initial, cfg, round_index, best, classifier=model)
        atomic_write_text(run / "state.json", json.dumps({"round": round_index + 1, "epoch": 0, "best": best}))
    if not (run / "model.keras").is_file():
        _save_atomic(model, run / "model.keras")
    result = {"history": _read_history(run)}
    if val_examples:
        best_model = load_classifier(run / "model.keras")
        probs = predict_examples(best_model, val_examples, source, cfg)
        rows = per_class_metrics(np.stack([e.target for e in val_examples]), probs)
        atomic_write_text(run / "val_per_class.csv", "class,auc,f1,support\n" + "".join(
            f"{r['class']},{'' if r['auc'] is None else round(r['auc'], 4)},{'' if r['f1'] is None else round(r['f1'], 4)},{r['support']}\n"
            for r in rows))
        result["val_per_class"] = rows
    _plot_curves(run)
    if failures:
        raise BatchFailures(sorted(failures), len(labels))
    return result


def fold_split(ids: list[str], folds: int, seed: int) -> list[list[str]]:
    """Image IDs dealt into `folds` disjoint folds of near-equal size (seeded shuffle)."""
    order = np.random.default_rng(seed).permutation(sorted(ids))
    return [sorted(part.tolist()) for part in np.array_split(order, folds)]


def out_of_fold_labels(cfg: Config, images: Path, labels: dict[str, tuple[int, ...]], masks: Path, fold_run: Path,
                       held_out: list[str]) -> dict[tuple[str, int], tuple[int, ...]]:
    """Relabel the held-out images' cells with the fold model in `fold_run`: each image label is
    kept on a cell where the model's score passes `pseudo_labels`; returns {(ID, cell_id): labels}."""
    from .model import load_classifier

    cells_cfg = _with_train(cfg, mode="cells")
    cache = masks / "crops"
    examples = make_examples(cells_cfg, images, {i: labels[i] for i in held_out}, masks, cache=cache)
    source = CropSource(cells_cfg, images, masks, cache)
    scores = predict_examples(load_classifier(fold_run / "model.keras"), examples, source, cells_cfg)
    relabelled = pseudo_labels(examples, scores, cfg.train.pseudo_keep, cfg.train.pseudo_min)
    return {(e.image_id, e.cell_id): tuple(np.flatnonzero(e.target).tolist()) for e in relabelled}


def _with_train(cfg: Config, **changes) -> Config:
    from .config import replace

    return replace(cfg, train=replace(cfg.train, **changes))


def train_oof(cfg: Config, images: str | Path, labels_csv: str | Path, masks: str | Path, run: str | Path) -> dict:
    """Out-of-fold pseudo-labels (train.pseudo_rounds rounds of train.pseudo_folds folds), then
    the final model on them.

    Round r: the images are dealt into folds; for each fold a model (train.mode in round 1, then
    truth mode on the previous round's labels) trains on the other folds into RUN/oof/r{r}_f{f}
    and relabels the held-out images' cells (never its own training cells), giving
    RUN/oof/r{r}_cell_labels.csv. The final model trains in truth mode on the last table into RUN.
    Every step resumes: finished fold runs and tables are reused.
    """
    images, masks, run = Path(images), Path(masks), Path(run)
    labels = read_labels(labels_csv)
    oof = run / "oof"
    oof.mkdir(parents=True, exist_ok=True)
    table: Optional[Path] = None
    for round_index in range(1, cfg.train.pseudo_rounds + 1):
        out = oof / f"r{round_index}_cell_labels.csv"
        if not out.is_file():
            relabelled: dict[tuple[str, int], tuple[int, ...]] = {}
            folds = fold_split(list(labels), cfg.train.pseudo_folds, cfg.train.seed + round_index)
            for fold_index, held_out in enumerate(folds):
                fold_run = oof / f"r{round_index}_f{fold_index}"
                fold_labels = fold_run.with_suffix(".labels.csv")
                trained_on = set(labels) - set(held_out)
                write_labels(fold_labels, {i: labels[i] for i in sorted(trained_on)})
                fold_cfg = _with_train(cfg, pseudo_rounds=0, pseudo_folds=0, mode=cfg.train.mode if table is None else "truth")
                print(f"out-of-fold round {round_index}, fold {fold_index + 1}/{len(folds)}: "
                      f"{len(labels) - len(held_out)} training images, {len(held_out)} relabelled")
                train(fold_cfg, images, fold_labels, masks, fold_run, table)
                relabelled.update(out_of_fold_labels(cfg, images, labels, masks, fold_run, held_out))
            write_cell_labels(out, relabelled)
        table = out
    return train(_with_train(cfg, mode="truth", pseudo_rounds=0, pseudo_folds=0), images, labels_csv, masks, run, table)


def _read_history(run: Path) -> list[dict]:
    import csv

    path = run / "history.csv"
    if not path.is_file():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float:
    """A history.csv value as float; CSVLogger writes 'NA' for a metric missing in an epoch."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _plot_curves(run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    rows = _read_history(run)
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key in zip(axes, ("loss", "auc")):
        for prefix in ("", "val_"):
            if prefix + key in rows[0]:
                ax.plot([float(r["epoch"]) + 1 for r in rows], [_number(r[prefix + key]) for r in rows], label=prefix + key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    with atomic_path(run / "curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
