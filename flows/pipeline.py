"""The pipeline flow: collect -> explain -> simulate -> score -> agree, storing after each stage.

Thin by design: each task loads its inputs from the warehouse, calls one stage function from
``neuroscribe.stages`` (or ``neuroscribe.collect``), writes the records it returns, and passes ids
to the next task. A run is marked ``finished`` only after the last stage; any exception marks it
``failed`` with the error and is raised again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

from prefect import flow, task
from prefect.cache_policies import NONE

from neuroscribe import stages
from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.cache import prime_cache_from_warehouse
from neuroscribe.warehouse import connect, store


def _stage(warehouse: str, run_id: str, name: str) -> None:
    with closing(connect(warehouse)) as con:
        store.set_stage(con, run_id, name)


@task(name="collect", cache_policy=NONE)
def collect_task(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    _stage(warehouse, run_id, "collect")
    result = stages.collect_units(cfg)
    with closing(connect(warehouse)) as con:
        store.save_collection(
            con, run_id, result.subject, result.corpus_id, result.windows, result.units
        )
    return [u.unit.key for u in result.units]


@task(name="explain", cache_policy=NONE)
def explain_task(cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str]) -> list[str]:
    _stage(warehouse, run_id, "explain")
    with closing(connect(warehouse)) as con:
        units = store.load_units(con, unit_keys)
        windows = store.load_windows(con, (w.window_id for u in units for w in u.windows))
        prime_cache_from_warehouse(con)  # a call made before (by any run) is not made again
    ledger = Ledger()
    explanations = stages.explain_units(units, windows, cfg, ledger)
    with closing(connect(warehouse)) as con:
        store.save_llm_calls(con, run_id, ledger.drain())
        store.save_explanations(con, run_id, cfg.config_hash, explanations)
    return [e.explanation_id for e in explanations]


@task(name="simulate", cache_policy=NONE)
def simulate_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> int:
    _stage(warehouse, run_id, "simulate")
    with closing(connect(warehouse)) as con:
        units = store.load_units(con, unit_keys)
        windows = store.load_windows(con, (w.window_id for u in units for w in u.windows))
        explanations = store.load_explanations(con, explanation_ids)
        done = frozenset(
            (s.explanation_id, s.simulator) for s in store.load_simulations(con, explanation_ids)
        )
        prime_cache_from_warehouse(con)
    ledger = Ledger()
    simulations = stages.simulate_explanations(explanations, units, windows, cfg, ledger, done)
    with closing(connect(warehouse)) as con:
        store.save_llm_calls(con, run_id, ledger.drain())
        store.save_simulations(con, run_id, simulations)
    return len(simulations)


@task(name="score", cache_policy=NONE)
def score_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> int:
    _stage(warehouse, run_id, "score")
    with closing(connect(warehouse)) as con:
        units = store.load_units(con, unit_keys)
        explanations = store.load_explanations(con, explanation_ids)
        simulations = store.load_simulations(con, [e.explanation_id for e in explanations])
    scores = stages.score_all(explanations, units, simulations, cfg)
    with closing(connect(warehouse)) as con:
        store.save_scores(con, run_id, scores)
    return len(scores)


@task(name="agree", cache_policy=NONE)
def agree_task(cfg: RunConfig, warehouse: str, run_id: str, explanation_ids: list[str]) -> int:
    _stage(warehouse, run_id, "agree")
    with closing(connect(warehouse)) as con:
        explanations = store.load_explanations(con, explanation_ids)
        ids = [e.explanation_id for e in explanations]
        simulations = store.load_simulations(con, ids)
        scores = store.load_scores(con, ids)
    agreements = stages.agree_all(explanations, simulations, scores)
    with closing(connect(warehouse)) as con:
        store.save_agreements(con, run_id, agreements)
    return len(agreements)


def _recorded(
    cfg: RunConfig, warehouse: str, run_id: str, body: Callable[[], list[str]]
) -> list[str]:
    """Record the run, run ``body``, and mark the run finished, or failed with the error.
    Returns what ``body`` returns: the ids the run worked on."""
    with closing(connect(warehouse)) as con:
        store.start_run(con, run_id, cfg)
    try:
        ids = body()
    except BaseException as e:
        with closing(connect(warehouse)) as con:
            store.finish_run(con, run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    with closing(connect(warehouse)) as con:
        store.finish_run(con, run_id, "finished")
    return ids


def _collected_units(cfg: RunConfig, warehouse: str) -> list[str]:
    """The config's units as already collected in the warehouse; an error if there are none."""
    subject, sites, sae_id = stages.unit_selector(cfg)
    with closing(connect(warehouse)) as con:
        keys = store.find_unit_keys(con, subject, sites, cfg.unit_indices, sae_id)
    if not keys:
        raise ValueError(
            f"no collected units of {cfg.subject.model} at {cfg.collect.site} in {warehouse}; "
            "run `neuroscribe collect` (or `neuroscribe run`) first"
        )
    return keys


@flow(name="neuroscribe-run", validate_parameters=False)
def run_flow(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    """Every stage, end to end. Returns the ids of the run's explanations."""
    stages.preflight(cfg)

    def body() -> list[str]:
        unit_keys = collect_task(cfg, warehouse, run_id)
        explanation_ids = explain_task(cfg, warehouse, run_id, unit_keys)
        simulate_task(cfg, warehouse, run_id, unit_keys, explanation_ids)
        score_task(cfg, warehouse, run_id, unit_keys, explanation_ids)
        agree_task(cfg, warehouse, run_id, explanation_ids)
        return explanation_ids

    return _recorded(cfg, warehouse, run_id, body)


@flow(name="neuroscribe-collect", validate_parameters=False)
def collect_flow(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    """Collection alone: windows, activations, statistics and held-out splits. Returns the
    unit keys."""
    stages.preflight(cfg, annotators=False)
    return _recorded(cfg, warehouse, run_id, lambda: collect_task(cfg, warehouse, run_id))


@flow(name="neuroscribe-score", validate_parameters=False)
def score_flow(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    """Simulate and score the current explanations of already collected units with the
    configured simulators, doing only what is missing (a new simulator scores everything that
    exists; an old one nothing new)."""
    stages.check_annotators(cfg, explainers=False)

    def body() -> list[str]:
        unit_keys = _collected_units(cfg, warehouse)
        with closing(connect(warehouse)) as con:
            ids = store.current_explanation_ids(con, unit_keys)
        simulate_task(cfg, warehouse, run_id, unit_keys, ids)
        score_task(cfg, warehouse, run_id, unit_keys, ids)
        return ids

    return _recorded(cfg, warehouse, run_id, body)


@flow(name="neuroscribe-agree", validate_parameters=False)
def agree_flow(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    """Agreement statistics over everything stored for the config's units (no LLM calls)."""

    def body() -> list[str]:
        unit_keys = _collected_units(cfg, warehouse)
        with closing(connect(warehouse)) as con:
            ids = store.current_explanation_ids(con, unit_keys)
        agree_task(cfg, warehouse, run_id, ids)
        return ids

    return _recorded(cfg, warehouse, run_id, body)
