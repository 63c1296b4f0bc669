"""The fit loop: loss, strategy, learning-rate schedule, validation, checkpoints and history."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from hpa_scc.core.config import Config
from hpa_scc.core.files import atomic_path, atomic_write_text
from hpa_scc.core.layout import HISTORY_FILE, LAST_FILE, MODEL_FILE, STATE_FILE
from hpa_scc.metrics.classification import macro_auc


def make_loss(cfg: Config, targets: np.ndarray):
    """Binary loss from config: bce, weighted_bce (positive weight from label counts) or focal."""
    if cfg.train.loss == "bce":
        return keras.losses.BinaryCrossentropy()
    if cfg.train.loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=cfg.train.focal_gamma)
    positives = targets.sum(axis=0) + 1.0
    weights = np.clip((len(targets) - positives) / positives, 1.0, cfg.train.class_weight_max).astype("float32")

    def weighted_bce(y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        loss = -(weights * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred))
        return ops.mean(loss, axis=-1)

    return weighted_bce


def get_strategy(name: str):
    """tf.distribute strategy by name (default | mirrored | multiworker | tpu)."""
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


def _cosine_callback(base_lr: float, first_epoch: int, epochs: int, steps: int, warmup_epochs: float):
    """Sets the learning rate before every batch: linear warm-up, then cosine decay to 0 over
    the round's `epochs` (epoch indices are global, so a resumed round continues the curve)."""
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
    class Validation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probs = classifier.predict(val_ds, verbose=0)
            logs["val_loss"] = float(keras.ops.convert_to_numpy(keras.ops.mean(loss_fn(val_targets, probs))))
            logs["val_auc"] = macro_auc(val_targets, probs)

    return Validation()


def save_model_atomic(model, path: Path) -> None:
    """model.save through a temp file + rename, so a kill never leaves a half-written .keras file."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def fit_round(model, train_ds, steps: int, validation, run: Path, epochs: int, initial_epoch: int, cfg: Config,
               round_index: int, best: float, classifier=None) -> float:
    """Fit epochs [initial_epoch, epochs) (global indices); returns the best monitored value so far.

    validation: None or (val_ds, val_targets N x 19, loss function); steps: batches per epoch.
    classifier: the per-cell model that is validated and saved (default `model`; in mil mode the
    model fitted is the bag model around it, and model.keras is the last epoch's: the
    inherited-label validation loss does not measure what MIL optimises).
    """
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
                save_model_atomic(classifier, run / MODEL_FILE)
            save_model_atomic(classifier, run / LAST_FILE)
            atomic_write_text(run / STATE_FILE, json.dumps(
                {"round": round_index, "epoch": epoch + 1 - round_index * cfg.train.epochs, "best": float(self.best)}))

    checkpoints = Checkpoints()
    callbacks = [] if validation is None else [_validation_callback(*validation, classifier)]
    first_epoch = round_index * cfg.train.epochs
    if cfg.train.lr_schedule == "cosine":
        callbacks.append(_cosine_callback(cfg.train.learning_rate, first_epoch, cfg.train.epochs, steps,
                                          cfg.train.warmup_epochs))
    else:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=cfg.train.reduce_lr,
                                                           factor=cfg.train.reduce_lr_factor))
    if cfg.train.early_stopping > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.train.early_stopping))
    callbacks += [keras.callbacks.CSVLogger(str(run / HISTORY_FILE), append=True), checkpoints]
    model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=2)
    return checkpoints.best


def trim_history(run: Path, completed_epochs: int) -> None:
    """Drop history.csv rows of epochs a kill interrupted after logging but before checkpointing."""
    path = run / HISTORY_FILE
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


def read_history(run: Path) -> list[dict]:
    path = run / HISTORY_FILE
    if not path.is_file():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))
