"""tf.data pipelines: cells (shuffle, augment, batch, prefetch) and MIL bags; input statistics."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.core.config import Config
from hpa_scc.model.layers import RandomGain
from hpa_scc.train.examples import Example
from hpa_scc.train.sources import CropSource, windowed_order


def input_statistics(examples: list[Example], source: CropSource, size: int, limit: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) of the model's input pixels, in [0, 1] units, each (C,), from up
    to `limit` examples spread evenly over the list (deterministic)."""
    picks = np.unique(np.linspace(0, len(examples) - 1, min(limit, len(examples))).astype(int))
    pixels = np.stack([source.pixels(examples[i]) for i in picks]).astype(np.float64) / 255.0
    flat = pixels.reshape(-1, pixels.shape[-1])
    return flat.mean(axis=0), flat.std(axis=0)


def make_augmenter(cfg: Config):
    """Keras preprocessing layers with ImageDataGenerator-style parameters, or None if disabled."""
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


def make_dataset(examples: list[Example], source: CropSource, cfg: Config, training: bool):
    """tf.data pipeline: generator (grouped by image) -> shuffle -> augment -> batch -> prefetch."""
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
        ds = ds.shuffle(min(cfg.train.shuffle_buffer, len(examples)), seed=seed)
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


def predict_examples(model, examples: list[Example], source: CropSource, cfg: Config) -> np.ndarray:
    """Model probabilities (N x 19) for examples, in order."""
    return model.predict(make_dataset(examples, source, cfg, training=False), verbose=0)
