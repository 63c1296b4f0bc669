"""Training on weak image-level labels.

    hpa-scc train --config configs/demo.yaml --images data/demo/train --labels data/demo/train.csv \
        --masks data/demo/masks --out runs/demo

Modes: `cells` (each cell crop inherits its image's labels: the weak setting), `image` (the
whole image resized), `truth` (per-cell labels from an ID,cell_id,Label table), `mil` (bags of
an image's cells whose pooled per-cell outputs the image labels supervise; see `make_bag_dataset`
and `model.layers.BagModel`). Optional pseudo-label rounds relabel every training cell with the
previous model (see `pseudo_labels`), or out of fold with `train.pseudo_folds` (see `train_oof`).
Input pipeline: tf.data over a generator that reads one image's cached crops at a time
(shuffle buffer, parallel augmentation, batch, prefetch), so the data set never has to fit in RAM.
RUNDIR gets model.keras (best val loss), last.keras + state.json (resume), config.yaml,
history.csv, curves.png, val_per_class.csv. Re-running into the same RUNDIR resumes.
With train.members >= 2, RUNDIR/members/m{i} each get all of that and RUNDIR/model.keras averages
them (see `train.ensemble`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from hpa_scc.core.config import Config, config_to_dict, load_config, save_config
from hpa_scc.core.errors import ConfigError, InputError
from hpa_scc.core.files import atomic_write_text, remove_stale_temp_files
from hpa_scc.core.layout import (CONFIG_FILE, CROP_CACHE_DIR, CURVES_FILE, LAST_FILE, MODEL_FILE, OOF_DIR, STATE_FILE,
                                 VAL_PER_CLASS_FILE)
from hpa_scc.core.parallel import KeepGoing
from hpa_scc.crops.shards import ShardSource, read_index
from hpa_scc.data.tables import read_cell_labels, read_labels, write_cell_labels, write_labels
from hpa_scc.metrics.classification import per_class_metrics
from hpa_scc.model.classifier import build_classifier, load_classifier
from hpa_scc.model.layers import BagModel
from hpa_scc.model.run_stamp import stamp_run
from hpa_scc.report.plots import plot_curves
from hpa_scc.train.datasets import bag_steps, input_statistics, make_bag_dataset, make_dataset, predict_examples
from hpa_scc.train.ensemble import train_ensemble
from hpa_scc.train.examples import fold_split, make_examples, prepared_examples, split_by_image
from hpa_scc.train.loop import fit_round, get_strategy, make_loss, read_history, save_model_atomic, trim_history
from hpa_scc.train.pseudo import out_of_fold_labels, pseudo_labels, with_train
from hpa_scc.train.sources import CropSource


RESUMABLE_KEYS = {"train.epochs", "train.early_stopping"}  # a rerun may change these


def check_run_folder(run: Path, cfg: Config) -> None:
    """InputError when `run` holds a run (its config.yaml) of other crop, model or training settings
    than `cfg`: resuming it would mix two models, and overwriting it would lose a finished one."""
    recorded_path = run / CONFIG_FILE
    if not recorded_path.is_file():
        if (run / MODEL_FILE).is_file() or (run / LAST_FILE).is_file():
            raise InputError(f"{run} holds a model but no {CONFIG_FILE}: its settings are unknown; "
                             "train into another --run folder")
        return
    try:
        recorded = config_to_dict(load_config(recorded_path))
    except (InputError, ConfigError) as error:
        raise InputError(f"{recorded_path} cannot be read ({error}); train into another --run folder") from None
    wanted = config_to_dict(cfg)
    changed = [f"{section}.{key} {recorded[section].get(key)!r} -> {value!r}"
               for section in ("crops", "model", "train") for key, value in wanted[section].items()
               if recorded[section].get(key) != value and f"{section}.{key}" not in RESUMABLE_KEYS]
    if changed:
        raise InputError(f"{run} holds a run of other settings ({'; '.join(changed[:4])}"
                         f"{'; ...' if len(changed) > 4 else ''}): train into another --run folder, "
                         "or delete it to start again")


def train(cfg: Config, images: str | Path, labels_csv: str | Path, masks: str | Path, run: str | Path,
          cell_labels_csv: Optional[str | Path] = None, prepared: Optional[str | Path] = None,
          fail_fast: bool = False) -> dict:
    """Train per config; returns {"history": rows of history.csv, "val_per_class": [...]}.

    An image whose crops cannot be made (unreadable file, missing mask) is left out and training
    goes on; BatchFailures names them after the model is saved (fail_fast: stop at the first).

    prepared: a folder written by `hpa-scc prepare` with these settings: crops stream from its
    shards (`prepare.shards_in_memory` at a time) and no PNG is read; images and masks are unused.
    train.members >= 2: an ensemble of that many such trainings (`train.ensemble`).
    """
    if cfg.train.members > 1:
        check_run_folder(Path(run), cfg)
        return train_ensemble(cfg, train, images, labels_csv, masks, run, cell_labels_csv, prepared, fail_fast)
    if cfg.train.pseudo_rounds and cfg.train.pseudo_folds >= 2:
        if prepared is not None:
            raise InputError("out-of-fold pseudo-labels read the images' own crops; train them without --prepared")
        return train_oof(cfg, images, labels_csv, masks, run)
    images, masks, run = Path(images), Path(masks), Path(run)
    check_run_folder(run, cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    labels = read_labels(labels_csv)
    cell_labels = read_cell_labels(cell_labels_csv) if cell_labels_csv else None
    train_ids, val_ids = split_by_image(labels, cfg.train.val_fraction, cfg.train.seed)
    batch = KeepGoing(fail_fast)
    if prepared is not None:
        index = read_index(prepared, cfg)
        train_examples = prepared_examples(cfg, Path(prepared), index, {i: labels[i] for i in train_ids}, cell_labels)
        val_examples = prepared_examples(cfg, Path(prepared), index, {i: labels[i] for i in val_ids}, cell_labels) \
            if val_ids else []
        source = ShardSource(prepared, index, cfg.prepare.shards_in_memory)
    else:
        cache = masks / CROP_CACHE_DIR
        train_examples = make_examples(cfg, images, {i: labels[i] for i in train_ids}, masks, cell_labels, cache,
                                       batch)
        val_examples = make_examples(cfg, images, {i: labels[i] for i in val_ids}, masks, cell_labels, cache,
                                     batch) if val_ids else []
        source = CropSource(cfg, images, masks, cache)
    run.mkdir(parents=True, exist_ok=True)  # the inputs are checked: only now is the run folder written
    remove_stale_temp_files(run)
    save_config(cfg, run / CONFIG_FILE)
    stamp_run(run, cfg)

    state = json.loads((run / STATE_FILE).read_text()) if (run / STATE_FILE).is_file() else {"round": 0, "epoch": 0}
    total_rounds = 1 + cfg.train.pseudo_rounds
    best = float(state.get("best", np.inf))
    strategy = get_strategy(cfg.train.strategy)
    print(f"strategy {cfg.train.strategy}: {strategy.num_replicas_in_sync} replica(s)")
    trim_history(run, state["round"] * cfg.train.epochs + state["epoch"])
    with strategy.scope():
        if (run / LAST_FILE).is_file() and (state["round"] > 0 or state["epoch"] > 0):
            model = load_classifier(run / LAST_FILE)
            print(f"resuming {run}: round {state['round'] + 1}, after epoch {state['epoch']}")
        else:
            model = build_classifier(cfg.model, input_statistics(train_examples, source, cfg.model.size, cfg.train.statistics_crops))
        targets = np.stack([e.target for e in train_examples])
        loss = make_loss(cfg, targets)
        fitted = model
        if cfg.train.mode == "mil":
            fitted = BagModel(model, cfg.train.mil_pooling, cfg.train.mil_lse_r, cfg.train.mil_attention_units)
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
            best = fit_round(fitted, dataset, steps, validation, run, first_epoch + cfg.train.epochs,
                              first_epoch + initial, cfg, round_index, best, classifier=model)
        atomic_write_text(run / STATE_FILE, json.dumps({"round": round_index + 1, "epoch": 0, "best": best}))
    if not (run / MODEL_FILE).is_file():
        save_model_atomic(model, run / MODEL_FILE)
    result = {"history": read_history(run)}
    if val_examples:
        best_model = load_classifier(run / MODEL_FILE)
        probs = predict_examples(best_model, val_examples, source, cfg)
        rows = per_class_metrics(np.stack([e.target for e in val_examples]), probs)
        atomic_write_text(run / VAL_PER_CLASS_FILE, "class,auc,f1,support\n" + "".join(
            f"{r['class']},{'' if r['auc'] is None else round(r['auc'], 4)},{'' if r['f1'] is None else round(r['f1'], 4)},{r['support']}\n"
            for r in rows))
        result["val_per_class"] = rows
    plot_curves(read_history(run), run / CURVES_FILE)
    batch.raise_failures(len(labels))
    return result


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
    oof = run / OOF_DIR
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
                fold_cfg = with_train(cfg, pseudo_rounds=0, pseudo_folds=0, mode=cfg.train.mode if table is None else "truth")
                print(f"out-of-fold round {round_index}, fold {fold_index + 1}/{len(folds)}: "
                      f"{len(labels) - len(held_out)} training images, {len(held_out)} relabelled")
                train(fold_cfg, images, fold_labels, masks, fold_run, table)
                relabelled.update(out_of_fold_labels(cfg, images, labels, masks, fold_run, held_out))
            write_cell_labels(out, relabelled)
        table = out
    return train(with_train(cfg, mode="truth", pseudo_rounds=0, pseudo_folds=0), images, labels_csv, masks, run, table)
