"""The score stage over a run: every (explanation, simulator) pair's simulations scored, all
pairs at once (``score.batched``)."""

from __future__ import annotations

from collections.abc import Sequence

from neuroscribe.config import RunConfig
from neuroscribe.progress import task
from neuroscribe.records import Explanation, Score, Simulation, UnitExamples
from neuroscribe.score.batched import score_pairs

CHUNK_PAIRS = 2048
"""Pairs scored per call (the progress advances by each)."""


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
    pairs = [
        (eid, simulator, by_key[explanation_unit[eid]], sims)
        for (eid, simulator), sims in sorted(grouped.items())
    ]
    out: list[Score] = []
    with task("score", len(pairs)) as advance:
        for lo in range(0, len(pairs), CHUNK_PAIRS):
            chunk = pairs[lo : lo + CHUNK_PAIRS]
            out.extend(score_pairs(chunk, cfg.score, seed=cfg.collect.seed))
            advance(len(chunk))
    return out
