"""Keras layers of training: multiple-instance bag pooling (`BagModel`) and random gain (`RandomGain`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from hpa_scc.core.classes import NUM_CLASSES


class BagModel(keras.Model):
    """Bags B x K x S x S x C -> {"cells": B x K x 19 per-cell probabilities of `classifier`,
    "image": B x 19 pooled over the bag}. Trains the classifier's own weights; only the
    classifier is saved (the attention layers serve training only).

    pooling: mean | max | lse (log-sum-exp of the logits, sharpness `lse_r`) | attention (a
    `attention_units`-wide tanh layer scores each cell per class).
    """

    def __init__(self, classifier, pooling: str, lse_r: float, attention_units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.features = keras.Model(classifier.inputs, classifier.layers[-2].output)
        self.head = classifier.layers[-1]
        self.pooling, self.lse_r = pooling, lse_r
        if pooling == "attention":
            self.attention_hidden = layers.Dense(attention_units, activation="tanh")
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
