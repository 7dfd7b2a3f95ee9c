"""The Dask side of the fan-out (``flows.engine``): the task runner, its cluster's size, how
many units go in a chunk, and work sent once to every worker."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from prefect.context import FlowRunContext

from neuroscribe.config import EngineConfig
from neuroscribe.errors import BadInput

CHUNKS_PER_WORKER = 4
"""Chunks per worker in each round when ``engine.chunk_units`` is not set: enough that a
worker that finishes early takes another, and that the flow writes one chunk's records while
the workers compute the next; few enough that the fixed cost of a Prefect task run (a few tenths
of a second of the flow's time) stays small."""


def dask_task_runner(engine: EngineConfig) -> Any:
    """Prefect's ``DaskTaskRunner`` for ``engine``: the scheduler at ``engine.address``, or a
    local cluster of ``engine.workers`` single-threaded worker processes (Dask sets
    ``OMP_NUM_THREADS=1`` in each, so a worker takes one core)."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:
        raise BadInput(
            'engine.kind = "dask" needs the prefect-dask package: pip install prefect-dask'
        ) from e
    if engine.address:
        return DaskTaskRunner(address=engine.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": engine.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def chunks(items: Sequence[Any], size: int) -> list[tuple[int, list[Any]]]:
    """``(offset, items[offset:offset + size])`` for every chunk, in order."""
    return [(i, list(items[i : i + size])) for i in range(0, len(items), size)]


def chunk_size(engine: EngineConfig, units: int, workers: int) -> int:
    """Units per chunk: ``engine.chunk_units``, or by default the units cut evenly into
    ``CHUNKS_PER_WORKER`` chunks per worker (thread) of the cluster."""
    if engine.chunk_units is not None:
        return engine.chunk_units
    return max(1, math.ceil(units / (CHUNKS_PER_WORKER * max(workers, 1))))


def dask_client() -> Any:
    """The Dask client of the running flow's task runner (starting its cluster), if any."""
    return getattr(getattr(FlowRunContext.get(), "task_runner", None), "client", None)


def cluster_workers(engine: EngineConfig, client: Any) -> int:
    """Worker threads of the fan-out's cluster, as its scheduler reports them (else
    ``engine.workers``)."""
    threads = sum(client.nthreads().values()) if client is not None else 0
    return threads or engine.workers


def warm_workers(client: Any, fn: Callable[..., Any], *args: Any) -> list[Any]:
    """``fn(*args)`` submitted once to every worker of ``client``'s cluster (none without a
    client); hold the futures while they run (a released future's task may be cancelled)."""
    if client is None:
        return []
    return [
        client.submit(fn, *args, workers=[w], pure=False, allow_other_workers=False)
        for w in client.scheduler_info()["workers"]
    ]
