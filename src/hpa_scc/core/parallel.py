"""Parallel work and batches that keep going: the one process pool, the one ordered look-ahead
stream, Dask or local task runs, and `KeepGoing`, the rule every batch of images follows."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from hpa_scc.core.errors import BatchFailures, InputError, describe

T = TypeVar("T")


WORKER_DIED = "its worker process died (killed from outside, e.g. by the out-of-memory killer) twice"


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the process that made it ends (Linux: the kernel
    sends SIGTERM; elsewhere only the check at start), so a killed batch leaves no orphans."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)


def process_pool(workers: int, spawn: bool = False) -> ProcessPoolExecutor:
    """The project's process pool: `workers` processes, spawned (needed beside TensorFlow's threads,
    and for a clean process to measure) or forked (cheaper, the platform's default); its workers
    end when this process ends."""
    context = multiprocessing.get_context("spawn") if spawn else None
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))


def _alone(function: Callable[..., T], args: tuple, on_death: Callable[[Any], T], item: Any, spawn: bool) -> T:
    """`function(*args)` in a fresh one-process pool: the task whose worker died is run again by
    itself; when its worker dies again, `on_death(item)` is its result (that item's failure)."""
    with process_pool(1, spawn=spawn) as pool:
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool:
            return on_death(item)


def run_tasks(function: Callable[[Any], Any], tasks: list, workers: int = 1, scheduler: Optional[Any] = None,
              on_death: Optional[Callable[[Any], Any]] = None) -> Iterator[Any]:
    """Results of `function(task)` for every task, in completion order.

    scheduler: a Dask distributed address ("tcp://host:8786") or a `distributed.Client`;
    otherwise `workers` > 1 uses that many local processes, and 1 runs in this process.
    `function` must be a module-level function (it is pickled to the workers).
    on_death(task): the result of a task whose local worker process died twice (it is run again
    alone after the first death; the other tasks go on in a new pool); None = raise BrokenProcessPool.
    """
    if scheduler is not None:
        from distributed import Client  # Dask: imported only when a scheduler is named (slow to import)
        from distributed import as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        for future in dask_completed(client.map(function, tasks, pure=False)):
            yield future.result()
    elif workers > 1 and len(tasks) > 1:
        remaining = list(tasks)
        while remaining:
            broken = []
            with process_pool(workers) as pool:
                futures = {pool.submit(function, t): t for t in remaining}
                for future in as_completed(futures):
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        if on_death is None:
                            raise
                        broken.append(futures[future])
                        continue
                    yield result
            if broken:  # the pool broke: the first of its unfinished tasks runs alone, the rest go on
                yield _alone(function, (broken[0],), on_death, broken[0], spawn=False)
            remaining = broken[1:]
    else:
        for task in tasks:
            yield function(task)


def ordered_stream(function: Callable[..., T], items: Iterable, workers: int, window: int, *args: Any,
                   spawn: bool = True, on_death: Optional[Callable[[Any], T]] = None) -> Iterator[T]:
    """`function(*args, item)` for every item, in the items' order, with `workers` processes keeping
    up to `window` items ahead of the consumer (memory holds the window, not the whole list).
    workers 0 (or one item) runs in the calling process. on_death(item): the result of an item whose
    worker process died twice (see `run_tasks`); None = raise BrokenProcessPool."""
    items = list(items)
    if workers <= 0 or len(items) <= 1:
        for item in items:
            yield function(*args, item)
        return
    window = max(window, workers)
    pending = deque(items)
    while pending:
        with process_pool(workers, spawn=spawn) as pool:
            queued: deque = deque()
            while pending and len(queued) < window:
                item = pending.popleft()
                queued.append((item, pool.submit(function, *args, item)))
            while queued:
                item, future = queued.popleft()
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if on_death is None:
                        raise
                    pending.extendleft(reversed([i for i, _ in queued]))  # the rest go to a new pool
                    queued.clear()
                    yield _alone(function, (*args, item), on_death, item, spawn)
                    break
                if pending:
                    nxt = pending.popleft()
                    queued.append((nxt, pool.submit(function, *args, nxt)))
                yield result


class KeepGoing:
    """The rule of every batch of images: a bad image is noted (ID, one line naming the file and the
    problem) and the batch goes on; `raise_failures` then names them all. fail_fast: stop at the first.
    """

    def __init__(self, fail_fast: bool = False):
        self.fail_fast = fail_fast
        self.failures: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.failures)

    def add(self, image_id: str, problem: str) -> None:
        """Note a failed image (fail_fast: InputError with its problem)."""
        if self.fail_fast:
            raise InputError(problem)
        self.failures.append((image_id, problem))

    def attempt(self, image_id: str, function: Callable[..., T], *args: Any) -> Optional[T]:
        """`function(*args)`, or None when it raises (the image is noted; fail_fast: the error propagates).
        `function` must not return None itself."""
        try:
            return function(*args)
        except Exception as error:  # noqa: BLE001 - one bad image never stops the others
            if self.fail_fast:
                raise
            self.failures.append((image_id, describe(error)))
            return None

    def sorted(self, order: Optional[list[str]] = None) -> list[tuple[str, str]]:
        """The noted (ID, problem) pairs, sorted by ID or in the order of the IDs in `order`."""
        if order is None:
            return sorted(self.failures)
        rank = {image_id: k for k, image_id in enumerate(order)}
        return sorted(self.failures, key=lambda failure: rank[failure[0]])

    def raise_failures(self, total: int, order: Optional[list[str]] = None) -> None:
        """BatchFailures naming every noted image (see `sorted`) of a batch of `total`, if any."""
        if self.failures:
            raise BatchFailures(self.sorted(order), total)
