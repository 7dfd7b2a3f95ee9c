"""The audit's warehouse rows, built from what it planted and what the run explained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuroscribe.audit.recover import Embed, recover_all
from neuroscribe.audit.spec import AuditPlan, Plant, PlantedCopy
from neuroscribe.records import Explanation
from neuroscribe.warehouse.rows import now


def unit_index(unit_key: str) -> int:
    """A unit key ends with its index (``subject_id/site[/sae=...]/index``)."""
    return int(unit_key.rsplit("/", 1)[1])


def audit_rows(
    run_id: str,
    plan: AuditPlan,
    copy: PlantedCopy,
    explanations: Sequence[Explanation],
    embed: Embed | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the ``audits`` row, the ``audit_units`` rows) of one audit: a verdict for every selected
    explanation of a planted unit, and its score handle for every unplanted one."""
    by_index = {u.unit: u for u in copy.units}
    plants: dict[str, Plant] = {}
    for e in explanations:
        planted = by_index.get(unit_index(e.unit_key))
        if planted is not None:
            plants[e.unit_key] = planted.plant
    verdicts = recover_all(plants, explanations, plan.spec.similarity, embed)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in sorted(explanations, key=lambda e: e.status == "ok"):  # ok wins over failed
        if not e.selected:
            continue
        index = unit_index(e.unit_key)
        planted = by_index.get(index)
        verdict = verdicts.get((e.unit_key, e.explainer))
        plant = planted.plant if planted else None
        rows[(e.unit_key, e.explainer)] = {
            "run_id": run_id,
            "unit_key": e.unit_key,
            "unit_index": index,
            "planted": planted is not None,
            "kind": plant.kind if plant else None,
            "trigger": plant.name if plant else None,
            "trigger_words": list(plant.words) if plant else None,
            "trigger_token_ids": list(plant.token_ids) if plant else None,
            "trigger_windows": plant.n_windows if plant else None,
            "relocated_to": planted.relocated_to if planted else None,
            "plant_auroc": planted.auroc if planted else None,
            "plant_trigger_median": planted.trigger_median if planted else None,
            "plant_trigger_spread": planted.trigger_spread if planted else None,
            "plant_max_other": planted.max_other if planted else None,
            "plant_outlier_triggers": planted.outlier_triggers if planted else None,
            "function_change": copy.function_change,
            "explainer": e.explainer,
            "explanation_id": e.explanation_id if e.status == "ok" else None,
            "explanation": e.text if e.status == "ok" else None,
            "recovered": verdict.recovered if verdict else None,
            "why": verdict.why if verdict else None,
            "similarity": verdict.similarity if verdict else None,
        }
    audit = {
        "run_id": run_id,
        "subject": copy.subject,
        "subject_weights_hash": copy.subject_weights_hash,
        "planted_model": copy.folder,
        "site": plan.site,
        "kind": plan.spec.kind,
        "n_planted": len(copy.units),
        "n_unplanted": len(copy.unplanted),
        "seed": plan.spec.seed,
        "similarity_threshold": plan.spec.similarity,
        "function_change": copy.function_change,
        "function_windows": copy.function_windows,
        "spec_json": plan.spec.model_dump_json(),
        "created_at": now(),
    }
    return audit, [rows[k] for k in sorted(rows)]
