"""Crops of consecutive images packed into fixed-size batches, outputs mapped back to their cells."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from hpa_scc.core.classes import NUM_CLASSES
from hpa_scc.predict.stream import PreparedImage


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
