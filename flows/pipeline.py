"""The pipeline flow: collect -> explain -> simulate -> score -> agree, storing after each stage.

Thin by design: each task loads its inputs from the warehouse, calls one stage function from
``neuroscribe.stages`` (or ``neuroscribe.collect``), writes the records it returns, and passes ids
to the next task. A run is marked ``finished`` only after the last stage; any exception marks it
``failed`` with the error and is raised again.
"""

from __future__ import annotations

from contextlib import closing

from prefect import flow, task
from prefect.cache_policies import NONE

import flows  # noqa: F401  (sets the offline Prefect settings before prefect is imported)
from neuroscribe import stages
from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
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
    ledger = Ledger()
    simulations = stages.simulate_explanations(explanations, units, windows, cfg, ledger)
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


@flow(name="neuroscribe-run", validate_parameters=False)
def run_flow(cfg: RunConfig, warehouse: str, run_id: str) -> str:
    """Every stage, end to end. Returns the run id."""
    stages.preflight(cfg)
    with closing(connect(warehouse)) as con:
        store.start_run(con, run_id, cfg)
    try:
        unit_keys = collect_task(cfg, warehouse, run_id)
        explanation_ids = explain_task(cfg, warehouse, run_id, unit_keys)
        simulate_task(cfg, warehouse, run_id, unit_keys, explanation_ids)
        score_task(cfg, warehouse, run_id, unit_keys, explanation_ids)
        agree_task(cfg, warehouse, run_id, explanation_ids)
    except BaseException as e:
        with closing(connect(warehouse)) as con:
            store.finish_run(con, run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    with closing(connect(warehouse)) as con:
        store.finish_run(con, run_id, "finished")
    return run_id
