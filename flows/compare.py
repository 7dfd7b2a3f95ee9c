"""The comparison flow: two or more subjects (or SAEs of one site, ``compare.saes``) through the
same corpus windows, unit matches and CKA stored in the warehouse (``site_comparisons``,
``unit_matches``; views ``universality`` and ``model_diff``), then the top of the diff
(``compare.explain`` units) explained and scored by the pipeline (``flows.pipeline.run_flow``,
one subflow per subject, site and SAE, each recorded in ``runs`` as usual), reusing units
already explained. Recorded as a run like the pipeline's flows."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.pipeline import _recorded, _stage, run_flow
from flows.retry import RETRY
from neuroscribe.compare.diff import candidate_units, explain_configs
from neuroscribe.compare.run import check_compare, run_comparison
from neuroscribe.compare.stream import Comparison
from neuroscribe.config import RunConfig
from neuroscribe.ids import new_run_id
from neuroscribe.warehouse import comparisons, connect


@task(name="compare", cache_policy=NONE, **RETRY)
def compare_task(cfg: RunConfig, warehouse: str, run_id: str) -> Comparison:
    _stage(warehouse, run_id, "compare")
    result = run_comparison(cfg)  # the warehouse is not held during the forward passes
    c = cfg.compare
    with closing(connect(warehouse)) as con:
        comparisons.save_comparison(
            con, run_id, result, c.threshold, similarity=c.similarity, score_change=c.score_change
        )
    return replace(result, pairs=[])  # what the next task needs (subjects, SAEs): no arrays


@task(name="plan explanations", cache_policy=NONE, **RETRY)
def plan_task(cfg: RunConfig, warehouse: str, run_id: str, compared: Comparison) -> list[RunConfig]:
    _stage(warehouse, run_id, "explain diff")
    with closing(connect(warehouse)) as con:
        units = candidate_units(comparisons.diff_candidates(con, run_id, cfg.compare.explain))
        explained = comparisons.explained_units(con, units)
    return explain_configs(cfg, compared.subjects, units, explained, compared.saes)


@flow(name="neuroscribe-compare", validate_parameters=False)
def compare_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Compare ``cfg.compare.models`` (or ``cfg.compare.saes``) on the corpus, then explain the
    top of the diff. Returns the subjects' ids."""
    if not checked:
        check_compare(cfg)

    def body() -> list[str]:
        compared = compare_task(cfg, warehouse, run_id)
        if cfg.compare.explain:
            for sub_cfg in plan_task(cfg, warehouse, run_id, compared):
                run_flow(sub_cfg, warehouse, new_run_id(sub_cfg.config_hash))
        return [s.subject_id for s in compared.subjects]

    return _recorded(cfg, warehouse, run_id, body)
