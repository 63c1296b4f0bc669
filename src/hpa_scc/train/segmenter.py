"""`hpa-scc train-segmenter`: the `unet` backend's U-Net, trained on generated images only.

    hpa-scc train-segmenter --out src/hpa_scc/segment/weights/unet.weights.h5 [--images 400] [--steps 3200] [--seed 1]

writes OUT (Keras weights) and, beside it, the same network as NAME.onnx (what the backend runs).

Each training image is drawn with its own random appearance (cell size and density, nucleus size,
brightness, blur, noise, mitotic cells, bit depth: `random_appearance`), so that no single look is
learnt; targets are hpacellseg's maps of the true labels (`segment.maps.maps_from_labels`) at the
U-Net's working side. Patches are augmented with flips, 90-degree turns and per-channel gain and
gamma. The real HPA images are never used: they stay for measuring (`hpa-scc bench segment`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.errors import InputError
from hpa_scc.core.parallel import ordered_stream
from hpa_scc.segment.maps import maps_from_labels
from hpa_scc.segment.unet import build_unet, export_unet_onnx, unet_input
from hpa_scc.synth.draw import generate_image


def random_appearance(rng: np.random.Generator) -> SynthConfig:
    """One image's generator settings, drawn from wide ranges around the defaults."""
    cells_min = int(rng.integers(5, 20))
    return dataclasses.replace(
        SynthConfig(), cells_min=cells_min, cells_max=cells_min + int(rng.integers(4, 20)),
        cell_radius=float(rng.uniform(0.07, 0.14)), nucleus_ratio=float(rng.uniform(0.36, 0.56)),
        brightness=float(np.exp(rng.uniform(np.log(0.4), np.log(1.8)))), blur=float(rng.uniform(0.3, 1.8)),
        noise=float(rng.uniform(0.005, 0.05)), p_mitotic=float(rng.uniform(0.0, 0.1)))


def _example(seed_and_side: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One generated image -> (float16 S x S x 3 input, float16 S x S x 6 soft targets)."""
    seed, side = seed_and_side
    rng = np.random.default_rng(seed)
    size = int(rng.choice([384, 512, 640, 768, 1024]))
    image = generate_image(seed, size, random_appearance(rng), bits=int(rng.choice([8, 16])))
    x = unet_input(image.rgby, side)
    targets = []
    for pred in maps_from_labels(image.cells, image.nuclei):
        small = cv2.resize(pred, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        border, interior = small[..., 1], small[..., 2]
        background = np.clip(1.0 - border - interior, 0.0, 1.0)
        stack = np.stack([background, border, interior], -1)
        targets.append(stack / np.maximum(stack.sum(-1, keepdims=True), 1e-6))
    return x.astype(np.float16), np.concatenate(targets, -1).astype(np.float16)


def _augment(x: tf.Tensor, y: tf.Tensor, patch: int) -> tuple[tf.Tensor, tf.Tensor]:
    both = tf.image.random_crop(tf.concat([x, y], -1), (patch, patch, 9))
    both = tf.image.rot90(both, tf.random.uniform((), 0, 4, tf.int32))
    both = tf.image.random_flip_left_right(both)
    x, y = both[..., :3], both[..., 3:]
    gain = tf.exp(tf.random.uniform((1, 1, 3), -0.5, 0.5))
    gamma = tf.exp(tf.random.uniform((1, 1, 3), -0.3, 0.3))
    return tf.pow(tf.clip_by_value(x * gain, 0.0, 4.0), gamma), y


def _loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of each 3-class head (nuclei, cells), borders weighted x3 (they are thin)."""
    total = 0.0
    for offset in (0, 3):
        truth, pred = y_true[..., offset:offset + 3], tf.clip_by_value(y_pred[..., offset:offset + 3], 1e-6, 1.0)
        weight = 1.0 + 2.0 * truth[..., 1]
        total += tf.reduce_mean(weight * -tf.reduce_sum(truth * tf.math.log(pred), -1))
    return total


def train_segmenter(out: str | Path, n_images: int = 400, steps: int = 3200, batch_size: int = 8, patch: int = 192,
                    side: int = 512, base: int = 8, seed: int = 1, workers: int = 2, progress: bool = True) -> dict:
    """Train the U-Net and write its weights to `out` (atomically); returns {"seconds", "final_loss", "params"}."""
    if not str(out).endswith(".weights.h5"):
        raise InputError(f"--out {out}: U-Net weights are written as a .weights.h5 file")
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    jobs = [(seed * 100_003 + k, side) for k in range(n_images)]
    x = y = None
    for k, (xk, yk) in enumerate(ordered_stream(_example, jobs, workers, 2 * workers, spawn=False)):
        if x is None:  # every example has the same side (unet_input of a square frame): fill in place
            x = np.empty((n_images,) + xk.shape, xk.dtype)
            y = np.empty((n_images,) + yk.shape, yk.dtype)
        x[k], y[k] = xk, yk
    print(f"train-segmenter: {n_images} generated images at side {side} in {time.perf_counter() - start:.0f} s")
    data = (tf.data.Dataset.from_tensor_slices((x, y)).repeat().shuffle(min(n_images, 256), seed=seed)
            .map(lambda a, b: _augment(tf.cast(a, tf.float32), tf.cast(b, tf.float32), patch),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(2))
    model = build_unet(base)
    epochs = 8
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, warmup_target=None)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=_loss)
    history = model.fit(data, steps_per_epoch=max(1, steps // epochs), epochs=epochs, verbose=2 if progress else 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.parent / f".{out.name}.tmp.weights.h5"  # Keras wants the .weights.h5 ending on what it writes
    model.save_weights(staged)
    os.replace(staged, out)
    onnx_path = Path(str(out)[: -len(".weights.h5")] + ".onnx")
    diff = export_unet_onnx(model, onnx_path)
    print(f"train-segmenter: {onnx_path} exported (max |ONNX - Keras| {diff:.1e})")
    seconds = time.perf_counter() - start
    print(f"train-segmenter: {steps} steps in {seconds / 60:.1f} min, last loss {history.history['loss'][-1]:.4f}; "
          f"{model.count_params()} weights in {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return {"seconds": seconds, "final_loss": float(history.history["loss"][-1]), "params": model.count_params()}
