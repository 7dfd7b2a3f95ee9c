"""The explain / simulate / score fan-out on Dask workers (``[engine] kind = "dask"``).

The run flow calls ``fan_out`` in place of its explain, simulate and score tasks. ``fan_out``
runs a subflow on Prefect's ``DaskTaskRunner`` (package ``prefect-dask``): the scheduler at
``engine.address`` (for ``run``, that of the one local cluster the run started for all its
stages: ``flows.cluster.one_cluster``), or a local cluster of ``engine.workers`` processes
started for the fan-out. One cluster serves the whole fan-out:

1. **every stage, chunk by chunk**: the live units are cut into chunks (``chunk_sizes``:
   ``engine.chunk_units``, by default shrinking chunks, large ones first); each chunk goes to a
   worker (``flows.chunk_work.explain_score_chunk``), which explains its units (best-of-n
   included, with the sampling seeds the units get in a single-process run), embeds the
   selected explanations for ``neuroscribe search``, makes the shuffled controls whose donor
   (the next unit) is in the chunk, then simulates, fuzzes and scores the selected explanations
   and those controls, and returns the rows. So a unit's data travels once, and a worker never
   waits for the others between stages.
2. **the controls across chunk boundaries**: each chunk's last unit's control is the next
   chunk's first unit's explanation; the flow makes these once every chunk is back (one per
   chunk, ``boundary_controls``), and one more task simulates, fuzzes and scores them.

The run's ``stage`` reads ``explain`` until the first chunk's rows are written, ``simulate``
while chunks come back, and ``score`` from the last one on, so both engines record the same
stages. With ``explanation_ids`` (the ``score`` command), the units with explanations are
chunked and each chunk is simulated, fuzzed and scored (``simulate_score_chunk``); the stage
reads ``simulate``, then ``score`` from the first chunk on. Workers score the predictions as the
warehouse stores them (32-bit floats, ``simulations.predictions``), as the single-process score
stage does, since it reads them back from the warehouse; so both engines store the same rows.

Workers never open the warehouse, and the flow's process handles no record of a chunk: it reads
each chunk's units, windows and the simulations stored for them as Arrow tables
(``neuroscribe.warehouse.columnar``), sends them sealed (``flows.sealed``: neither Prefect nor
Dask walks, hashes or re-pickles them), a chunk as soon as it is read, and writes the Arrow
tables each chunk returns (explanations, embeddings, simulations, scores and LLM calls) as the
chunk comes back, one transaction each. It stays the only writer. A worker primes its response
cache with the warehouse's stored calls (pickled once per fan-out, sent with each chunk), so a
re-run makes no call that any run made before, as in a single-process run. As the fan-out
starts, every worker imports the stages and loads MiniLM (``warm_up``); models load once per
worker process (``neuroscribe.models.load_model`` is cached per process), not once per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from typing import Any

from prefect import flow
from prefect.futures import as_completed

from flows.chunk_work import (
    ChunkResult,
    ExplainWork,
    ScoreWork,
    boundary_controls,
    explain_score_chunk,
    simulate_score_chunk,
    warm_up,
)
from flows.cluster import (
    chunk_sizes,
    chunks,
    cluster_workers,
    dask_client,
    dask_task_runner,
    warm_workers,
)
from flows.sealed import Sealed
from neuroscribe import progress
from neuroscribe.config import RunConfig
from neuroscribe.records import Explanation
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import calls, collection, columnar, connect, rows, runs


def _write(
    con: Any,
    run_id: str,
    result: ChunkResult,
    stage: str | None = None,
    adopted: Sequence[str] | None = None,
) -> None:
    """One chunk's rows (one transaction), then a heartbeat of the run (with ``stage``, the
    stage it has reached)."""
    columnar.save_tables(con, run_id, result.tables, result.adopted if adopted is None else adopted)
    if stage is None:
        runs.beat(con, run_id)
    else:
        runs.set_stage(con, run_id, stage)


def _collect(
    futures: dict[Any, int], warehouse: str, run_id: str, label: str, first_stage: str | None
) -> dict[int, ChunkResult]:
    """Write each chunk's rows as it comes back (the first with ``first_stage``); returns the
    results by chunk index."""
    done: dict[int, ChunkResult] = {}
    with closing(connect(warehouse)) as con, progress.task(label, len(futures)) as advance:
        for n, future in enumerate(as_completed(list(futures))):
            result: ChunkResult = future.result()
            _write(con, run_id, result, first_stage if n == 0 else None)
            done[futures[future]] = result
            advance(1)
    return done


def _explain_and_score(
    cfg: RunConfig, warehouse: str, run_id: str, workers: int, unit_keys: list[str]
) -> list[str]:
    """Every stage of the live units, chunk by chunk, then the shuffled controls whose donor is
    in the next chunk; returns the explanation ids (controls included) in the single-process
    order."""
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, "explain")
        live = collection.live_unit_keys(con, unit_keys)
        cache = Sealed(calls.cache_rows(con))  # pickled once, for every chunk
        parts = chunks(live, chunk_sizes(cfg.engine, len(live), workers))
        futures: dict[Any, int] = {}
        for i, (first, part) in enumerate(parts):  # each chunk goes as soon as it is read
            stored, fuzzed = columnar.stored_simulations(con, unit_keys=part)
            work = ExplainWork(
                run_id,
                columnar.unit_tables(con, part),
                stored,
                fuzzed,
                cache,
                first=first,
                whole=len(parts) == 1,
            )
            futures[explain_score_chunk.submit(cfg, Sealed(work))] = i
    done = _collect(futures, warehouse, run_id, "explain, simulate and score chunks", "simulate")
    with closing(connect(warehouse)) as con:
        if not futures:  # nothing to explain: the local engine's stages pass all the same
            runs.set_stage(con, run_id, "simulate")
        runs.set_stage(con, run_id, "score")
        boundary = (
            boundary_controls([part for _, part in parts], {i: r.donors for i, r in done.items()})
            if cfg.score.controls
            else {}
        )
        _score_controls(cfg, con, run_id, [c for cs in boundary.values() for c in cs], cache)
    # The single-process order: explainer by explainer, each over every unit in order; then the
    # controls, in unit order.
    order = {name: i for i, name in enumerate(cfg.explain.explainers)}
    explained = sorted(
        (x for i in sorted(done) for x in done[i].explained),
        key=lambda x: order.get(x[0], len(order)),
    )
    controls = [
        c
        for i in sorted(done)
        for c in [*done[i].controls, *(b.explanation_id for b in boundary.get(i, []))]
    ]
    return [eid for _, eid in explained] + controls


def _score_controls(
    cfg: RunConfig, con: Any, run_id: str, controls: list[Explanation], cache: Sealed[Any]
) -> None:
    """Store these shuffled controls, then simulate, fuzz and score them on a worker, as one
    chunk (they are few: one per chunk of the first round)."""
    if not controls:
        return
    annotated.save_explanations(con, run_id, cfg.config_hash, controls)
    ids = [c.explanation_id for c in controls]
    stored, fuzzed = columnar.stored_simulations(con, explanation_ids=ids)
    tables = columnar.unit_tables(con, [c.unit_key for c in controls])
    work = ScoreWork(run_id, tables, stored, fuzzed, cache, explanations=controls)
    _write(con, run_id, simulate_score_chunk.submit(cfg, Sealed(work)).result(), adopted=ids)


def _simulate_and_score(
    cfg: RunConfig,
    warehouse: str,
    run_id: str,
    workers: int,
    unit_keys: list[str],
    explanation_ids: list[str],
) -> None:
    """Simulate, fuzz and score stored explanations (the ``score`` command): the inputs
    ``flows.pipeline.simulate_task`` loads (and the rows it takes over from a run that did not
    finish), sent to the workers chunk by chunk."""
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, "simulate")
        explanations = annotated.load_explanations(con, explanation_ids)
        with rows.transaction(con):
            rows.adopt(con, run_id, "simulations", "explanation_id", explanation_ids)
            rows.adopt(con, run_id, "scores", "explanation_id", explanation_ids)
        cache = Sealed(calls.cache_rows(con))
        by_unit: dict[str, list[Explanation]] = {}
        for e in explanations:
            by_unit.setdefault(e.unit_key, []).append(e)
        explained = [k for k in unit_keys if k in by_unit]
        futures: dict[Any, int] = {}
        for i, (_, part) in enumerate(
            chunks(explained, chunk_sizes(cfg.engine, len(explained), workers))
        ):
            mine = [e for k in part for e in by_unit[k]]
            stored, fuzzed = columnar.stored_simulations(
                con, explanation_ids=[e.explanation_id for e in mine]
            )
            work = ScoreWork(
                run_id, columnar.unit_tables(con, part), stored, fuzzed, cache, explanations=mine
            )
            futures[simulate_score_chunk.submit(cfg, Sealed(work))] = i
    _collect(futures, warehouse, run_id, "simulate and score chunks", "score")
    if not futures:  # nothing to simulate: the local engine's score stage starts all the same
        with closing(connect(warehouse)) as con:
            runs.set_stage(con, run_id, "score")


@flow(name="neuroscribe-fan-out", validate_parameters=False)
def fan_out_flow(
    cfg: RunConfig,
    warehouse: str,
    run_id: str,
    unit_keys: list[str],
    explanation_ids: list[str] | None = None,
) -> list[str]:
    """Explain (unless ``explanation_ids`` are given), then simulate and score, on the flow's
    task runner. Returns the ids of the explanations simulated and scored."""
    client = dask_client()
    warming = warm_workers(client, warm_up, explanation_ids is None)  # noqa: F841 (held)
    workers = cluster_workers(cfg.engine, client)
    if explanation_ids is not None:
        _simulate_and_score(cfg, warehouse, run_id, workers, unit_keys, explanation_ids)
        return explanation_ids
    return _explain_and_score(cfg, warehouse, run_id, workers, unit_keys)


def fan_out(
    cfg: RunConfig,
    warehouse: str,
    run_id: str,
    unit_keys: list[str],
    explanation_ids: list[str] | None = None,
) -> list[str]:
    """``fan_out_flow`` on the Dask task runner of ``cfg.engine`` (one cluster for the whole
    fan-out; a local one is stopped when it ends). A chunk's data travels with its task, once
    (sealed), by design: Dask's warning about task graphs over 10 MB is raised to 1 GB."""
    import dask

    runner = dask_task_runner(cfg.engine)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1GB"}):
        result: list[str] = fan_out_flow.with_options(task_runner=runner)(
            cfg, warehouse, run_id, unit_keys, explanation_ids
        )
    return result
