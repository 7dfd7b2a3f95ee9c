"""The comparison flow: two or more subjects through the same corpus windows, unit matches and
CKA stored in the warehouse (``site_comparisons``, ``unit_matches``; views ``universality`` and
``model_diff``). Recorded as a run like the pipeline's flows."""

from __future__ import annotations

from contextlib import closing

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.pipeline import RETRY, _recorded, _stage
from neuroscribe.compare.stream import compare_subjects
from neuroscribe.compare.subjects import check_compare
from neuroscribe.config import RunConfig
from neuroscribe.warehouse import comparisons, connect


@task(name="compare", cache_policy=NONE, **RETRY)
def compare_task(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    _stage(warehouse, run_id, "compare")
    result = compare_subjects(cfg)  # the warehouse is not held during the forward passes
    with closing(connect(warehouse)) as con:
        comparisons.save_comparison(con, run_id, result, cfg.compare.threshold)
    return [s.subject_id for s in result.subjects]


@flow(name="neuroscribe-compare", validate_parameters=False)
def compare_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Compare ``cfg.compare.models`` on the corpus. Returns the subjects' ids."""
    if not checked:
        check_compare(cfg)
    return _recorded(cfg, warehouse, run_id, lambda: compare_task(cfg, warehouse, run_id))
