"""The score stage over a run: every (explanation, simulator) pair's simulations scored."""

from __future__ import annotations

from collections.abc import Sequence

from neuroscribe.config import RunConfig
from neuroscribe.progress import track
from neuroscribe.records import Explanation, Score, Simulation, UnitExamples
from neuroscribe.score.score import score_explanation


def score_units(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    simulations: Sequence[Simulation],
    cfg: RunConfig,
) -> list[Score]:
    """Every score kind of every (explanation, simulator) pair that has simulations, on the
    explanation's unit, in the order of (explanation id, simulator)."""
    by_key = {u.unit.key: u for u in units}
    grouped: dict[tuple[str, str], list[Simulation]] = {}
    for s in simulations:
        grouped.setdefault((s.explanation_id, s.simulator), []).append(s)
    explanation_unit = {e.explanation_id: e.unit_key for e in explanations}
    out: list[Score] = []
    for (eid, simulator), sims in track(sorted(grouped.items()), "score"):
        unit = by_key[explanation_unit[eid]]
        out.extend(score_explanation(eid, simulator, unit, sims, cfg.score, seed=cfg.collect.seed))
    return out
