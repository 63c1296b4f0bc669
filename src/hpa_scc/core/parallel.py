"""Run independent tasks on local processes or a Dask cluster, yielding results as they finish."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed as first_done
from typing import Any, Callable, Iterator, Optional


def run_tasks(function: Callable[[Any], Any], tasks: list, workers: int = 1, scheduler: Optional[Any] = None) -> Iterator[Any]:
    """Results of `function(task)` for every task, in completion order.

    scheduler: a Dask distributed address ("tcp://host:8786") or a `distributed.Client`;
    otherwise `workers` > 1 spawns that many local processes, and 1 runs in this process.
    `function` must be a module-level function (it is pickled to the workers).
    """
    if scheduler is not None:
        from distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        for future in as_completed(client.map(function, tasks, pure=False)):
            yield future.result()
    elif workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in first_done([pool.submit(function, t) for t in tasks]):
                yield future.result()
    else:
        for task in tasks:
            yield function(task)
