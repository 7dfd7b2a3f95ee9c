"""What a Dask worker does with a chunk of the fan-out (``flows.engine``), and what it is sent
and returns.

A chunk arrives as Arrow tables read from the warehouse (``neuroscribe.warehouse.columnar``):
its units, their windows' activations, the windows, and the simulations stored for them. The
worker builds the records from them, runs the stages, and returns the rows to write as Arrow
tables, so the flow's process handles no record of a chunk in either direction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from flows.retry import RETRY
from flows.sealed import Sealed
from neuroscribe import search
from neuroscribe.config import RunConfig
from neuroscribe.explain.units import shuffled_controls
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.cache import prime_cache
from neuroscribe.records import Explanation, UnitExamples, Window
from neuroscribe.score import score_units
from neuroscribe.simulate import fuzz_units, simulate_units
from neuroscribe.simulate.base import as_stored
from neuroscribe.warehouse import columnar
from neuroscribe.warehouse.annotations import explanation_rows, score_rows, simulation_rows
from neuroscribe.warehouse.calls import llm_call_rows

CacheRows = list[tuple[str, str | None, int | None, int | None]]


@dataclass
class ChunkWork:
    """A chunk's units (``tables``), with the simulations stored for them (``stored``, with
    the (explanation, simulator) pairs already fuzzed) and the stored LLM responses that prime
    the response cache (sealed once for every chunk of a round)."""

    run_id: str
    tables: columnar.UnitTables
    stored: pa.Table
    fuzzed: list[tuple[str, str]]
    cache: Sealed[CacheRows]


@dataclass
class ExplainWork(ChunkWork):
    """To explain, simulate, fuzz and score live units ``first``, ``first + 1``, ... of the
    run. ``whole``: the chunk holds every live unit, so its last unit's shuffled control is its
    first unit's explanation; otherwise it is the next chunk's first unit's, made by the flow."""

    first: int = 0
    whole: bool = False


@dataclass
class ScoreWork(ChunkWork):
    """To simulate, fuzz and score these explanations of the chunk's units."""

    explanations: list[Explanation] = field(default_factory=list)


@dataclass
class ChunkResult:
    tables: dict[str, pa.Table]
    """The rows to write, per table, in order (``columnar.save_tables``)."""
    adopted: list[str]
    """The explanations whose stored simulations and scores the run takes over."""
    explained: list[tuple[str, str]] = field(default_factory=list)
    """``(explainer, explanation id)`` of the units' explanations, controls left out."""
    controls: list[str] = field(default_factory=list)
    """The shuffled controls the chunk made, in unit order."""
    donors: list[Explanation] = field(default_factory=list)
    """The first unit's selected explanations: the previous chunk's last unit's control."""


def _simulate_score(
    cfg: RunConfig,
    work: ChunkWork,
    units: list[UnitExamples],
    windows: dict[str, Window],
    explanations: list[Explanation],
    ledger: Ledger,
) -> dict[str, list[dict[str, Any]]]:
    """Simulate, fuzz and score ``explanations`` as the simulate and score stages do: what is
    stored is not made again, and it is scored with the new simulations. Scores are of the
    predictions as the warehouse stores them (``as_stored``), as the score stage reads them."""
    ids = {e.explanation_id for e in explanations}
    stored = columnar.simulation_records(work.stored, ids)
    done = frozenset((s.explanation_id, s.simulator) for s in stored)
    fuzzed = frozenset(p for p in work.fuzzed if p[0] in ids)
    new = [as_stored(s) for s in simulate_units(explanations, units, windows, cfg, ledger, done)]
    fuzz = fuzz_units(explanations, units, windows, cfg, ledger, fuzzed)
    scores = score_units(explanations, units, [*stored, *new], cfg)
    return {
        "simulations": simulation_rows(work.run_id, new),
        "scores": score_rows(work.run_id, [*fuzz, *scores]),  # fuzzing first, as the stages
    }


@task(name="explain-score-chunk", cache_policy=NONE, **RETRY)
def explain_score_chunk(cfg: RunConfig, sealed: Sealed[ExplainWork]) -> ChunkResult:
    """Explain a chunk's units (``explain_units``, best-of-n included, seeded as in a
    single-process run: unit ``i`` gets seed ``collect.seed + i``), embed the selected
    explanations for ``neuroscribe search``, make the shuffled controls whose donor is in the
    chunk, then simulate, fuzz and score the selected explanations and those controls."""
    from neuroscribe.explain.units import explain_units

    work = sealed.value
    prime_cache(work.cache.value)
    units, windows = columnar.unit_records(work.tables)
    keys = [u.unit.key for u in units]
    ledger = Ledger()
    part = cfg.model_copy(
        update={
            "collect": cfg.collect.model_copy(update={"seed": cfg.collect.seed + work.first}),
            "score": cfg.score.model_copy(update={"controls": False}),
        }
    )
    explanations = explain_units(units, windows, part, ledger)
    controls = chunk_controls(explanations, keys, work.whole) if cfg.score.controls else []
    made = [*explanations, *controls]
    rows: dict[str, list[dict[str, Any]]] = {
        "explanations": explanation_rows(work.run_id, cfg.config_hash, made),
        "explanation_embeddings": search.embedding_rows(explanations),
    }
    selected = [e for e in made if e.selected]
    rows.update(_simulate_score(cfg, work, units, windows, selected, ledger))
    rows["llm_calls"] = llm_call_rows(work.run_id, ledger.drain())
    return ChunkResult(
        columnar.result_tables(rows),
        adopted=[e.explanation_id for e in made],
        explained=[(e.explainer, e.explanation_id) for e in explanations],
        controls=[c.explanation_id for c in controls],
        donors=donors(explanations, keys[0]),
    )


def chunk_controls(
    explanations: list[Explanation], keys: list[str], whole: bool
) -> list[Explanation]:
    """The shuffled controls of a chunk's units (``keys``, in order) whose donor, the next
    unit, is in the chunk: all of them when the chunk holds every live unit (``whole``), else
    all but the last unit's (``boundary_controls``)."""
    controls = shuffled_controls(explanations, keys)
    return controls if whole else [c for c in controls if c.unit_key != keys[-1]]


def donors(explanations: list[Explanation], key: str) -> list[Explanation]:
    """The explanations of unit ``key`` that can be another unit's shuffled control."""
    return [e for e in explanations if e.unit_key == key and e.status == "ok" and e.selected]


def boundary_controls(
    parts: list[list[str]], first_donors: dict[int, list[Explanation]]
) -> dict[int, list[Explanation]]:
    """The shuffled control of each chunk's last unit, by chunk: its donor is the next chunk's
    first unit (the first chunk's, after the last), whose explanations that can be one are
    ``first_donors`` (by chunk). With ``chunk_controls``, what ``shuffled_controls`` makes over
    every live unit in one process."""
    if len(parts) < 2:
        return {}
    made: dict[int, list[Explanation]] = {}
    for i, part in enumerate(parts):
        following = (i + 1) % len(parts)
        controls = shuffled_controls(first_donors[following], [part[-1], parts[following][0]])
        made[i] = [c for c in controls if c.unit_key == part[-1]]
    return made


@task(name="simulate-score-chunk", cache_policy=NONE, **RETRY)
def simulate_score_chunk(cfg: RunConfig, sealed: Sealed[ScoreWork]) -> ChunkResult:
    """Simulate, fuzz and score a chunk's explanations (``ScoreWork``)."""
    work = sealed.value
    prime_cache(work.cache.value)
    units, windows = columnar.unit_records(work.tables)
    ledger = Ledger()
    rows = _simulate_score(cfg, work, units, windows, work.explanations, ledger)
    rows["llm_calls"] = llm_call_rows(work.run_id, ledger.drain())
    return ChunkResult(columnar.result_tables(rows), [])


def warm_up(embed: bool) -> int:
    """Run once on each worker as the fan-out starts, while the flow reads the inputs: the
    imports (this module's, so every stage's) and, when explanations will be embedded for
    ``neuroscribe search``, MiniLM, which a worker's first chunk would otherwise load. On a
    cluster that served a run before, nothing is left to load. Returns the process id."""
    import neuroscribe.explain.units  # noqa: F401

    if embed:
        from neuroscribe.embed import embed_texts

        embed_texts(["warm up"])
    return os.getpid()
