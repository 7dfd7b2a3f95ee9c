"""Which units are escalated: the decision from the cheap annotators' headline scores.

Pure: explanations and scores in, one ``UnitBudget`` per unit out. A unit is escalated when its
best cheap headline score (the best selected explanation of a cheap explainer, under the cheap
simulator that scores it highest) is undefined or below ``budget.below``, or, with
``budget.disagree``, when the best scores of its cheap explainers differ by at least that.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from neuroscribe.budget.config import BudgetConfig
from neuroscribe.records import Explanation, Record, Score
from neuroscribe.registry import HEADLINE_SCORE


class Reason(StrEnum):
    """Why a unit was, or was not, escalated (``unit_budget.reason``)."""

    NO_CHEAP_SCORE = "no cheap score"
    """No cheap explainer's explanation has a defined headline score with a cheap simulator."""
    BELOW = "below threshold"
    DISAGREE = "cheap explainers disagree"
    ENOUGH = "cheap score enough"
    """Not escalated: the cheap score reaches the threshold and the cheap explainers agree."""


class UnitBudget(Record):
    """The decision for one unit (a row of ``unit_budget``)."""

    unit_key: str
    escalated: bool
    reason: Reason
    cheap_score: float | None
    """The best cheap headline score (None: undefined)."""
    cheap_explainer: str | None
    cheap_simulator: str | None
    spread: float | None
    """Best minus worst of the cheap explainers' best scores (None: fewer than two defined)."""
    threshold: float
    disagree: float | None


def decide(
    unit_keys: Sequence[str],
    explanations: Sequence[Explanation],
    scores: Sequence[Score],
    cheap_explainers: Sequence[str],
    cheap_simulators: Sequence[str],
    budget: BudgetConfig,
) -> list[UnitBudget]:
    """The decision for every unit of ``unit_keys``, in that order, from the headline scores of
    the selected ok explanations of ``cheap_explainers`` under ``cheap_simulators``. Ties of
    the best score go to the explainer and simulator that come first in the config."""
    explainer_rank = {n: i for i, n in enumerate(cheap_explainers)}
    simulator_rank = {n: i for i, n in enumerate(cheap_simulators)}
    chosen = {
        e.explanation_id: e
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer in explainer_rank
    }
    # per unit: (score, explainer, simulator) of every defined cheap headline score
    found: dict[str, list[tuple[float, str, str]]] = {k: [] for k in unit_keys}
    for s in scores:
        e = chosen.get(s.explanation_id)
        if (
            e is None
            or s.kind != HEADLINE_SCORE
            or s.value is None
            or s.simulator not in simulator_rank
            or e.unit_key not in found
        ):
            continue
        found[e.unit_key].append((s.value, e.explainer, s.simulator))
    return [_one(key, found[key], explainer_rank, simulator_rank, budget) for key in unit_keys]


def _one(
    key: str,
    found: list[tuple[float, str, str]],
    explainer_rank: dict[str, int],
    simulator_rank: dict[str, int],
    budget: BudgetConfig,
) -> UnitBudget:
    def base(escalated: bool, reason: Reason, **best: object) -> UnitBudget:
        return UnitBudget.model_validate(
            {
                "unit_key": key,
                "escalated": escalated,
                "reason": reason,
                "cheap_score": None,
                "cheap_explainer": None,
                "cheap_simulator": None,
                "spread": None,
                "threshold": budget.below,
                "disagree": budget.disagree,
                **best,
            }
        )

    if not found:
        return base(True, Reason.NO_CHEAP_SCORE)
    value, explainer, simulator = min(
        found, key=lambda f: (-f[0], explainer_rank[f[1]], simulator_rank[f[2]])
    )
    per_explainer: dict[str, float] = {}
    for v, x, _ in found:
        per_explainer[x] = max(v, per_explainer.get(x, v))
    spread = max(per_explainer.values()) - min(per_explainer.values())
    best = {
        "cheap_score": value,
        "cheap_explainer": explainer,
        "cheap_simulator": simulator,
        "spread": spread if len(per_explainer) > 1 else None,
    }
    if value < budget.below:
        return base(True, Reason.BELOW, **best)
    if budget.disagree is not None and len(per_explainer) > 1 and spread >= budget.disagree:
        return base(True, Reason.DISAGREE, **best)
    return base(False, Reason.ENOUGH, **best)
