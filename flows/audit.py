"""The audit flow: plant known features in a copy of the subject, run the whole pipeline
(``flows.pipeline.run_flow``, a subflow recorded in ``runs`` as usual) on the copy, then judge
what its explanations recovered and store ``audits`` and ``audit_units``; then (``sanity``)
test every score kind on the planted units (``neuroscribe.audit.sanity``, ``metric_sanity``).

Its caller checks the plan first (``neuroscribe.audit.plan_audit``), so bad input fails before
anything is written; the pipeline run checks the planted copy like any subject.
"""

from __future__ import annotations

from contextlib import closing

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.pipeline import run_flow
from flows.retry import RETRY
from neuroscribe.audit import AuditPlan, PlantedCopy, audit_rows, copy_config, planted_copy
from neuroscribe.audit.sanity import metric_sanity, plants_by_key
from neuroscribe.config import RunConfig
from neuroscribe.embed import embed_texts
from neuroscribe.ids import new_run_id
from neuroscribe.llm.base import Ledger
from neuroscribe.warehouse import audits, connect, sanity
from neuroscribe.warehouse.annotations import load_explanations
from neuroscribe.warehouse.collection import load_units, load_windows


@task(name="plant", cache_policy=NONE, **RETRY)
def plant_task(cfg: RunConfig, plan: AuditPlan) -> PlantedCopy:
    return planted_copy(cfg, plan)


@task(name="recover", cache_policy=NONE, **RETRY)
def recover_task(
    warehouse: str, run_id: str, plan: AuditPlan, copy: PlantedCopy, explanation_ids: list[str]
) -> None:
    with closing(connect(warehouse)) as con:
        explanations = load_explanations(con, explanation_ids)
    embed = embed_texts if plan.spec.kind == "concept" else None
    audit, units = audit_rows(run_id, plan, copy, explanations, embed)
    with closing(connect(warehouse)) as con:
        audits.save_audit(con, audit, units)


@task(name="metric sanity", cache_policy=NONE, **RETRY)
def sanity_task(
    cfg: RunConfig, warehouse: str, run_id: str, copy: PlantedCopy, explanation_ids: list[str]
) -> None:
    with closing(connect(warehouse)) as con:
        keys = sorted({e.unit_key for e in load_explanations(con, explanation_ids)})
        plants = plants_by_key(copy, keys)
        units = load_units(con, list(plants))
        windows = load_windows(con, {w.window_id for u in units for w in u.windows})
    rows = metric_sanity(run_id, plants, units, windows, cfg, Ledger())
    with closing(connect(warehouse)) as con:
        sanity.save_metric_sanity(con, rows)


@flow(name="neuroscribe-audit", validate_parameters=False)
def audit_flow(
    cfg: RunConfig, plan: AuditPlan, warehouse: str, run_sanity: bool = True
) -> tuple[str, PlantedCopy]:
    """Plant, run the pipeline on the copy, store the recovery, then (``run_sanity``) the
    sanity tests of the score kinds. Returns (the pipeline run's id, the planted copy)."""
    copy = plant_task(cfg, plan)
    copy_cfg = copy_config(cfg, copy)
    run_id = new_run_id(copy_cfg.config_hash)
    explanation_ids = run_flow(copy_cfg, warehouse, run_id)
    recover_task(warehouse, run_id, plan, copy, explanation_ids)
    if run_sanity:
        sanity_task(copy_cfg, warehouse, run_id, copy, explanation_ids)
    return run_id, copy
