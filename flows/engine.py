"""The explain / simulate / score fan-out on Dask workers (``[engine] kind = "dask"``).

The run flow calls ``fan_out`` in place of its explain, simulate and score tasks. ``fan_out``
runs a subflow on Prefect's ``DaskTaskRunner`` (package ``prefect-dask``): a local cluster of
``engine.workers`` processes started for the run, or the scheduler at ``engine.address``. One
cluster serves the whole fan-out, in two rounds:

1. **explain**: the live units are cut into chunks (``chunk_size``: ``engine.chunk_units``, by
   default 4 chunks per worker of the cluster); each chunk, with
   the windows its units use, goes to a worker, which runs ``explain_units`` on it (best-of-n
   included) and embeds the selected explanations for ``neuroscribe search``. Each chunk's
   sampling seeds are those the chunk's units get in a single-process run. The shuffled
   controls need every unit's explanation, so the flow makes them once all chunks are back.
2. **simulate and score**: the units with explanations are chunked again; a worker simulates,
   fuzzes and scores its chunk (``simulate_units``, ``fuzz_units``, ``score_units``) and
   returns the records. The run's ``stage`` reads ``simulate`` until the first chunk's records
   are written, then ``score`` (every chunk comes back scored), so both engines record the
   same stages, and a finished ``score`` command reads ``score`` on either. It scores
   the predictions as the warehouse stores them (32-bit floats, ``simulations.predictions``),
   as the single-process score stage does, since it reads them back from the warehouse; so
   both engines store the same rows.

Workers never open the warehouse: the flow's process reads the units and windows once for both
rounds, sends each chunk its part (sealed: ``flows.sealed``, so that neither Prefect nor Dask
walks, hashes or re-pickles it in the flow's process), and writes every chunk's records
(explanations, embeddings, simulations, scores and LLM calls) through one connection per round
as the chunk comes back, one transaction each. It stays the only writer. A worker primes its
response cache with the warehouse's stored calls sent along with each chunk, so a re-run makes
no call that any run made before, as in a single-process run. As the fan-out starts, every
worker imports the stages and loads MiniLM (``warm_up``) while the flow reads the inputs; models
load once per worker process (``neuroscribe.models.load_model`` is cached per process), not
once per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.futures import as_completed

from flows.cluster import (
    chunk_size,
    chunks,
    cluster_workers,
    dask_client,
    dask_task_runner,
    warm_workers,
)
from flows.retry import RETRY
from flows.sealed import Sealed
from neuroscribe import progress, search
from neuroscribe.config import RunConfig
from neuroscribe.explain.units import explain_units, shuffled_controls
from neuroscribe.llm.base import Ledger, LLMCall
from neuroscribe.llm.cache import prime_cache
from neuroscribe.records import Explanation, Score, Simulation, UnitExamples, Window
from neuroscribe.score import FUZZ_KINDS, score_units
from neuroscribe.simulate import fuzz_units, simulate_units
from neuroscribe.simulate.base import as_stored
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import calls, collection, connect, rows, runs

CacheRows = list[tuple[str, str | None, int | None, int | None]]


def windows_of(units: Iterable[UnitExamples], windows: Mapping[str, Window]) -> dict[str, Window]:
    """The windows these units use (the slice of ``windows`` a chunk is sent with)."""
    return {w.window_id: windows[w.window_id] for u in units for w in u.windows}


@dataclass
class ExplainChunk:
    explanations: list[Explanation]
    embeddings: list[dict[str, Any]]
    calls: list[LLMCall]


@dataclass
class SimulateChunk:
    simulations: list[Simulation]
    scores: list[Score]
    """Fuzzing scores first, then every other score kind."""
    calls: list[LLMCall] = field(default_factory=list)


@dataclass
class ExplainInputs:
    """What a worker needs to explain live units ``first``, ``first + 1``, ... of the run."""

    units: list[UnitExamples]
    windows: dict[str, Window]
    first: int
    cache: CacheRows


@dataclass
class SimulateInputs:
    """What a worker needs to simulate, fuzz and score a chunk's explanations. ``stored``:
    their simulations already in the warehouse (the pairs in ``done``), scored again with the
    new ones, as the score stage scores everything stored."""

    units: list[UnitExamples]
    windows: dict[str, Window]
    explanations: list[Explanation]
    stored: list[Simulation]
    done: frozenset[tuple[str, str]]
    fuzzed: frozenset[tuple[str, str]]
    cache: CacheRows


@task(name="explain-chunk", cache_policy=NONE, **RETRY)
def explain_chunk(cfg: RunConfig, sealed: Sealed[ExplainInputs]) -> ExplainChunk:
    """``explain_units`` on a chunk (``ExplainInputs``), seeded as in a single-process run
    (unit ``i`` gets seed ``collect.seed + i``), without the controls."""
    work = sealed.value
    prime_cache(work.cache)
    ledger = Ledger()
    part = cfg.model_copy(
        update={
            "collect": cfg.collect.model_copy(update={"seed": cfg.collect.seed + work.first}),
            "score": cfg.score.model_copy(update={"controls": False}),
        }
    )
    explanations = explain_units(work.units, work.windows, part, ledger)
    return ExplainChunk(explanations, search.embedding_rows(explanations), ledger.drain())


@task(name="simulate-score-chunk", cache_policy=NONE, **RETRY)
def simulate_score_chunk(cfg: RunConfig, sealed: Sealed[SimulateInputs]) -> SimulateChunk:
    """Simulate, fuzz and score a chunk's explanations (``SimulateInputs``)."""
    work = sealed.value
    prime_cache(work.cache)
    ledger = Ledger()
    units, windows, explanations = work.units, work.windows, work.explanations
    new = [
        as_stored(s) for s in simulate_units(explanations, units, windows, cfg, ledger, work.done)
    ]
    fuzz = fuzz_units(explanations, units, windows, cfg, ledger, work.fuzzed)
    scores = score_units(explanations, units, [*work.stored, *new], cfg)
    return SimulateChunk(new, [*fuzz, *scores], ledger.drain())


def _write(con: Any, run_id: str, save: Any, stage: str | None = None) -> None:
    """One chunk's records, then a heartbeat of the run (with ``stage``, the stage it has
    reached)."""
    save(con)
    if stage is None:
        runs.beat(con, run_id)
    else:
        runs.set_stage(con, run_id, stage)


@dataclass
class Inputs:
    """What both rounds send: the units (in order) and the windows they use, read once."""

    units: list[UnitExamples]
    windows: dict[str, Window]

    @classmethod
    def load(cls, con: Any, unit_keys: list[str]) -> Inputs:
        units = collection.load_units(con, unit_keys)
        windows = collection.load_windows(con, (w.window_id for u in units for w in u.windows))
        return cls(units, windows)


def warm_up(embed: bool) -> int:
    """Run once on each worker as the fan-out starts, while the flow reads the inputs: the
    imports (this module's, so every stage's) and, when explanations will be embedded for
    ``neuroscribe search``, MiniLM, which a worker's first chunk would otherwise load. On a
    cluster that served a run before, nothing is left to load. Returns the process id."""
    if embed:
        from neuroscribe.embed import embed_texts

        embed_texts(["warm up"])
    return os.getpid()


def _explain(
    cfg: RunConfig, warehouse: str, run_id: str, workers: int, unit_keys: list[str]
) -> tuple[list[str], Inputs]:
    """The explain round; returns the explanation ids (the controls' included) and the inputs
    it read, for the next round."""
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, "explain")
        inputs = Inputs.load(con, unit_keys)
        cache = calls.cache_rows(con)
    live = [u for u in inputs.units if not u.stats.dead]
    parts = chunks(live, chunk_size(cfg.engine, len(live), workers))
    futures = {
        explain_chunk.submit(
            cfg, Sealed(ExplainInputs(part, windows_of(part, inputs.windows), first, cache))
        ): i
        for i, (first, part) in enumerate(parts)
    }
    done: dict[int, list[Explanation]] = {}
    with (
        closing(connect(warehouse)) as con,
        progress.task("explain  chunks", len(parts)) as advance,
    ):
        for future in as_completed(list(futures)):
            result: ExplainChunk = future.result()

            def save(con: Any, r: ExplainChunk = result) -> None:
                annotated.save_explanations(con, run_id, cfg.config_hash, r.explanations)
                search.save_embeddings(con, r.embeddings)
                calls.save_llm_calls(con, run_id, r.calls)

            _write(con, run_id, save)
            done[futures[future]] = result.explanations
            advance(1)
        # The single-process order: explainer by explainer, each over every unit in order.
        order = {name: i for i, name in enumerate(cfg.explain.explainers)}
        explanations = sorted(
            (e for i in sorted(done) for e in done[i]),
            key=lambda e: order.get(e.explainer, len(order)),
        )
        if cfg.score.controls:
            controls = shuffled_controls(explanations, [u.unit.key for u in live])
            annotated.save_explanations(con, run_id, cfg.config_hash, controls)
            explanations += controls
    return [e.explanation_id for e in explanations], inputs


def _simulate_and_score(
    cfg: RunConfig,
    warehouse: str,
    run_id: str,
    workers: int,
    unit_keys: list[str],
    explanation_ids: list[str],
    inputs: Inputs | None = None,
) -> None:
    """The inputs that ``flows.pipeline.simulate_task`` loads (and the rows it takes over from
    a run that did not finish), sent to the workers chunk by chunk. ``inputs``: the units and
    windows, when the explain round has read them already."""
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, "simulate")
        inputs = inputs or Inputs.load(con, unit_keys)
        explanations = annotated.load_explanations(con, explanation_ids)
        stored = annotated.load_simulations(con, explanation_ids)
        done = frozenset((s.explanation_id, s.simulator) for s in stored)
        fuzzed = frozenset(
            (s.explanation_id, s.simulator)
            for s in annotated.load_scores(con, explanation_ids)
            if s.kind in FUZZ_KINDS
        )
        cache = calls.cache_rows(con)
        with rows.transaction(con):
            rows.adopt(con, run_id, "simulations", "explanation_id", explanation_ids)
            rows.adopt(con, run_id, "scores", "explanation_id", explanation_ids)
    by_unit: dict[str, list[Explanation]] = {}
    for e in explanations:
        by_unit.setdefault(e.unit_key, []).append(e)
    sims: dict[str, list[Simulation]] = {}
    for s in stored:
        sims.setdefault(s.explanation_id, []).append(s)
    explained = [u for u in inputs.units if u.unit.key in by_unit]
    futures = []
    size = chunk_size(cfg.engine, len(explained), workers)
    for _, part in chunks(explained, size):
        mine = [e for u in part for e in by_unit[u.unit.key]]
        ids = {e.explanation_id for e in mine}
        futures.append(
            simulate_score_chunk.submit(
                cfg,
                Sealed(
                    SimulateInputs(
                        part,
                        windows_of(part, inputs.windows),
                        mine,
                        [s for i in ids for s in sims.get(i, [])],
                        frozenset(p for p in done if p[0] in ids),
                        frozenset(p for p in fuzzed if p[0] in ids),
                        cache,
                    )
                ),
            )
        )
    with (
        closing(connect(warehouse)) as con,
        progress.task("simulate and score chunks", len(futures)) as advance,
    ):
        for n, future in enumerate(as_completed(futures)):
            result: SimulateChunk = future.result()

            def save(con: Any, r: SimulateChunk = result) -> None:
                annotated.save_simulations(con, run_id, r.simulations)
                annotated.save_scores(con, run_id, r.scores)
                calls.save_llm_calls(con, run_id, r.calls)

            _write(con, run_id, save, "score" if n == 0 else None)
            advance(1)
        if not futures:  # nothing to simulate: the local engine's score stage starts all the same
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
    ids, inputs = _explain(cfg, warehouse, run_id, workers, unit_keys)
    _simulate_and_score(cfg, warehouse, run_id, workers, unit_keys, ids, inputs)
    return ids


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
