"""The run's explain / simulate / score stages with a budget (``[budget] escalate``).

The cheap annotators (every configured one that ``budget.escalate`` does not name) explain,
simulate and score every live unit first; ``decide`` then escalates the units whose best cheap
headline score is below ``budget.below`` (or undefined, or whose cheap explainers disagree) and
records every decision in ``unit_budget``; only then do the escalated explainers explain the
escalated units, and the escalated simulators simulate the escalated units' explanations. The
shuffled controls are made once every explanation is in, as in a run without a budget.

The stages are the pipeline's own tasks (``flows.pipeline`` hands them over as ``Stages``), so
a re-run answers every LLM call from the cache and writes the same rows, and a resumed run does
only what is missing, as without a budget.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, NamedTuple

from prefect import task
from prefect.cache_policies import NONE

from flows.retry import RETRY
from neuroscribe.budget.decide import decide
from neuroscribe.config import RunConfig
from neuroscribe.explain.units import shuffled_controls
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import budget as budgeted
from neuroscribe.warehouse import collection, connect, runs


class Stages(NamedTuple):
    """The pipeline's explain, simulate and score tasks (``flows.pipeline``)."""

    explain: Any
    simulate: Any
    score: Any


def phase(cfg: RunConfig, explainers: list[str], simulators: list[str]) -> RunConfig:
    """``cfg`` with only these annotators and no controls: the config a phase works with (the
    rows it writes still carry ``cfg``'s hash)."""
    return cfg.model_copy(
        update={
            "explain": cfg.explain.model_copy(update={"explainers": explainers}),
            "simulate": cfg.simulate.model_copy(update={"simulators": simulators}),
            "score": cfg.score.model_copy(update={"controls": False}),
        }
    )


def _stage(warehouse: str, run_id: str, name: str) -> None:
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, name)


@task(name="decide", cache_policy=NONE, **RETRY)
def decide_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> list[str]:
    """Decide and record (``unit_budget``) which live units to escalate, from the cheap
    annotators' scores; returns the escalated unit keys."""
    _stage(warehouse, run_id, "decide")
    cheap_x, escalated_x = cfg.budget.split(cfg.explain.explainers)
    cheap_s, escalated_s = cfg.budget.split(cfg.simulate.simulators)
    with closing(connect(warehouse)) as con:
        live = collection.live_unit_keys(con, unit_keys)
        explanations = annotated.load_explanations(con, explanation_ids)
        scores = annotated.load_scores(con, explanation_ids)
    decisions = decide(live, explanations, scores, cheap_x, cheap_s, cfg.budget)
    with closing(connect(warehouse)) as con:
        budgeted.save_unit_budget(con, run_id, decisions, [*escalated_x, *escalated_s])
    return [d.unit_key for d in decisions if d.escalated]


@task(name="controls", cache_policy=NONE, **RETRY)
def controls_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> list[str]:
    """The shuffled controls (``explain.units.shuffled_controls``) of every explanation, the
    explainers in the config's order as in a run without a budget; returns their ids."""
    with closing(connect(warehouse)) as con:
        live = collection.live_unit_keys(con, unit_keys)
        explanations = annotated.load_explanations(con, explanation_ids)
    order = {name: i for i, name in enumerate(cfg.explain.explainers)}
    explanations.sort(key=lambda e: order.get(e.explainer, len(order)))  # stable
    controls = shuffled_controls(explanations, live)
    with closing(connect(warehouse)) as con:
        annotated.save_explanations(con, run_id, cfg.config_hash, controls)
    return [e.explanation_id for e in controls]


def of_units(warehouse: str, explanation_ids: list[str], unit_keys: list[str]) -> list[str]:
    """The ids among ``explanation_ids`` of selected explanations of these units."""
    keys = set(unit_keys)
    with closing(connect(warehouse)) as con:
        explanations = annotated.load_explanations(con, explanation_ids)
    return [e.explanation_id for e in explanations if e.unit_key in keys]


def escalating(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], stages: Stages
) -> list[str]:
    """Cheap explain, simulate and score of every unit; the decision; the escalated
    explainers on the escalated units; the controls; every simulator on what it has not yet
    simulated (the escalated ones on the escalated units only); the scores. Returns the ids of
    the run's explanations."""
    cheap_x, escalated_x = cfg.budget.split(cfg.explain.explainers)
    cheap_s, escalated_s = cfg.budget.split(cfg.simulate.simulators)
    cheap = phase(cfg, cheap_x, cheap_s)
    ids: list[str] = stages.explain(cfg, warehouse, run_id, unit_keys, work=cheap)
    stages.simulate(cheap, warehouse, run_id, unit_keys, ids)
    stages.score(cfg, warehouse, run_id, unit_keys, ids)
    escalated = decide_task(cfg, warehouse, run_id, unit_keys, ids)
    if escalated and escalated_x:
        more = phase(cfg, escalated_x, cheap_s)
        ids = ids + stages.explain(cfg, warehouse, run_id, unit_keys, work=more, only=escalated)
    if cfg.score.controls:
        ids = ids + controls_task(cfg, warehouse, run_id, unit_keys, ids)
    stages.simulate(cheap, warehouse, run_id, unit_keys, ids)  # the new explanations
    if escalated and escalated_s:
        mine = of_units(warehouse, ids, escalated)
        stages.simulate(phase(cfg, escalated_x, escalated_s), warehouse, run_id, unit_keys, mine)
    stages.score(cfg, warehouse, run_id, unit_keys, ids)
    return ids


def rescore(
    cfg: RunConfig,
    warehouse: str,
    run_id: str,
    unit_keys: list[str],
    explanation_ids: list[str],
    stages: Stages,
) -> list[str]:
    """The score flow with a budget: the cheap simulators on every explanation, the escalated
    ones only on the units that the latest decision stored for them escalated (a unit never
    decided is not escalated). Returns ``explanation_ids``."""
    cheap_s, escalated_s = cfg.budget.split(cfg.simulate.simulators)
    stages.simulate(phase(cfg, [], cheap_s), warehouse, run_id, unit_keys, explanation_ids)
    if escalated_s:
        with closing(connect(warehouse)) as con:
            escalated = budgeted.escalated_units(con, unit_keys)
        mine = of_units(warehouse, explanation_ids, escalated)
        if mine:
            stages.simulate(phase(cfg, [], escalated_s), warehouse, run_id, unit_keys, mine)
    stages.score(cfg, warehouse, run_id, unit_keys, explanation_ids)
    return explanation_ids
