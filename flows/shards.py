"""Collection sharded by unit over Dask workers (``[engine] kind = "dask"``).

Units are independent, so the collect stage cuts the units still to collect into one shard per
worker of the cluster, and each worker runs ``neuroscribe.collect.collect`` for its shard's
config: its own forward pass over the whole corpus (every worker needs the model and the corpus),
kept state and checkpoints of its own. The flow's process stays the only writer: it stores each
shard's records as they come back, one transaction each. A worker never opens the warehouse.

A shard is the config restricted to some unit indices, dealt out in turn (``[0, 2, 4]``,
``[1, 3, 5]``), so each worker covers every site. With ``collect.units = "all"`` the indices
are those every site has (all of them, when the sites are equally wide, as a model's MLP layers
are); sites of other widths are collected as one shard each.

The windows and splits collection chooses for a unit do not depend on the other units, so the
rows are those of one collection of all the units, except ``mean_activation`` (equal to float32
rounding: other units share its batches' sums) and, on a corpus larger than the token sample,
the quantiles (``collect.select.token_sample_capacity``: the sample's size depends on how many
units are collected together).
"""

from __future__ import annotations

from contextlib import closing

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.futures import as_completed

from flows.cluster import cluster_workers, dask_client, dask_task_runner
from flows.retry import RETRY
from flows.sealed import Sealed
from neuroscribe import progress
from neuroscribe.collect.collect import CollectResult, collect
from neuroscribe.collect.incremental import planned_units
from neuroscribe.config import RunConfig
from neuroscribe.warehouse import collection, connect


def shard_configs(cfg: RunConfig, workers: int) -> list[RunConfig]:
    """``cfg`` cut into at most ``workers`` configs that together name its units, each once."""
    workers = max(1, workers)
    if not cfg.every_unit:
        indices = cfg.unit_indices
        return [_with(cfg, units=indices[i::workers]) for i in range(min(workers, len(indices)))]
    by_site: dict[str, list[int]] = {}
    for unit in planned_units(cfg):
        by_site.setdefault(unit.site, []).append(unit.index)
    widest = max(by_site.values(), key=len)
    even = [site for site, idx in by_site.items() if idx == widest]
    shards = [
        _with(cfg, site=even, units=widest[i::workers])
        for i in range(min(workers, len(widest)))
    ]
    others = [site for site in by_site if site not in even]
    return shards + [_with(cfg, site=[site]) for site in others]


def _with(cfg: RunConfig, **collect_settings: object) -> RunConfig:
    return cfg.model_copy(update={"collect": cfg.collect.model_copy(update=collect_settings)})


@task(name="collect-shard", cache_policy=NONE, **RETRY)
def collect_shard(sealed: Sealed[RunConfig]) -> Sealed[CollectResult]:
    """One shard's collection, on a worker (it resumes from its own checkpoint)."""
    return Sealed(collect(sealed.value, resume=True))


@flow(name="neuroscribe-collect-shards", validate_parameters=False)
def collect_shards_flow(cfg: RunConfig, warehouse: str, run_id: str) -> int:
    """Collect ``cfg``'s units in shards on the flow's task runner and store each shard's
    records under ``run_id`` as it comes back. Returns the number of shards."""
    shards = shard_configs(cfg, cluster_workers(cfg.engine, dask_client()))
    futures = [collect_shard.submit(Sealed(s)) for s in shards]
    with progress.task("collect shards", len(futures)) as advance:
        for future in as_completed(futures):
            r = future.result().value
            with closing(connect(warehouse)) as con:  # not held while the workers collect
                collection.save_collection(
                    con, run_id, r.subject, r.corpus_id, r.windows, r.tables
                )
            advance(1)
    return len(shards)


def collect_on_workers(cfg: RunConfig, warehouse: str, run_id: str) -> int:
    """``collect_shards_flow`` on the Dask task runner of ``cfg.engine`` (a local cluster is
    started for it and stopped after)."""
    runner = dask_task_runner(cfg.engine)
    n: int = collect_shards_flow.with_options(task_runner=runner)(cfg, warehouse, run_id)
    return n
