"""The Dask side of the fan-out (``flows.engine``) and of sharded collection
(``flows.shards``): the cluster a run shares, the task runner, its cluster's size, how many
units go in a chunk, and work sent once to every worker."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect.context import FlowRunContext

from neuroscribe.config import EngineConfig, RunConfig
from neuroscribe.errors import BadInput

CHUNKS_PER_WORKER = 4
"""Chunks per worker in each round when ``engine.chunk_units`` is not set: enough that a
worker that finishes early takes another, and that the flow writes one chunk's records while
the workers compute the next; few enough that the fixed cost of a Prefect task run (a few tenths
of a second of the flow's time) stays small."""


@contextmanager
def one_cluster(cfg: RunConfig) -> Iterator[RunConfig]:
    """``cfg`` itself, unless it asks for a local Dask cluster (``kind = "dask"`` without an
    ``address``): then one is started here and ``cfg`` comes back naming its scheduler, so that
    the subflows of a run (sharded collection, the fan-out) use the same workers, which start
    and import once. Stopped when the block ends. ``[engine]`` is not
    hashed, so the rows are those the config names."""
    if cfg.engine.kind != "dask" or cfg.engine.address:
        yield cfg
        return
    from distributed import LocalCluster

    with LocalCluster(**_local_cluster(cfg.engine)) as cluster:
        engine = cfg.engine.model_copy(update={"address": cluster.scheduler_address})
        yield cfg.model_copy(update={"engine": engine})


def _local_cluster(engine: EngineConfig) -> dict[str, Any]:
    """A local cluster of ``engine.workers`` single-threaded worker processes (Dask sets
    ``OMP_NUM_THREADS=1`` in each, so a worker takes one core)."""
    return {
        "n_workers": engine.workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }


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
    return DaskTaskRunner(cluster_kwargs=_local_cluster(engine))


def chunks(items: Sequence[Any], sizes: int | Sequence[int]) -> list[tuple[int, list[Any]]]:
    """``(offset, items[offset:offset + size])`` for every chunk, in order: chunks of one size,
    or of the sizes given (which add up to ``len(items)``)."""
    if isinstance(sizes, int):
        sizes = [sizes] * math.ceil(len(items) / sizes)
    out, offset = [], 0
    for size in sizes:
        out.append((offset, list(items[offset : offset + size])))
        offset += size
    return out


def chunk_sizes(engine: EngineConfig, units: int, workers: int) -> list[int]:
    """Units per chunk, in order: ``engine.chunk_units`` each, or by default shrinking chunks
    (guided scheduling): each takes ``1 / (2 x workers)`` of the units not yet cut, but never
    fewer than the units cut evenly into ``2 x CHUNKS_PER_WORKER`` chunks per worker. Large
    chunks first keep the per-chunk costs few; small ones last keep the workers finishing
    together (the last chunk is what a worker may wait on alone)."""
    if engine.chunk_units is not None:
        size = engine.chunk_units
        return [min(size, units - i) for i in range(0, units, size)]
    workers = max(workers, 1)
    floor = max(1, math.ceil(units / (2 * CHUNKS_PER_WORKER * workers)))
    sizes, left = [], units
    while left > 0:
        size = min(left, max(floor, math.ceil(left / (2 * workers))))
        sizes.append(size)
        left -= size
    return sizes


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
