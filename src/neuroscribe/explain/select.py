"""Best-of-n: keep the sampled explanation that best predicts the unit on the validation split.

Weak explainers become useful by sampling several explanations and keeping the one that scores
best on windows that are never reported (``Split.VALIDATE``); see DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from neuroscribe.records import Explanation, Simulation, Split, UnitExamples, Window

if TYPE_CHECKING:
    from neuroscribe.simulate.base import BasicSimulator, Simulator


def select_best(
    samples: list[Explanation],
    unit: UnitExamples,
    windows: Mapping[str, Window],
    simulator: BasicSimulator,
    score: Callable[[UnitExamples, Sequence[Simulation]], float | None],
) -> list[Explanation]:
    """Score each ok sample on the validate windows and mark exactly one ``selected``.

    The best score wins; ties and undefined scores go to the lowest sample index (an undefined
    score ranks below every defined one). Failed samples get ``selected=False`` and no score.
    With no ok sample, none is selected.
    """
    validate = [windows[w.window_id] for w in unit.in_splits(Split.VALIDATE)]
    sims = {
        pos: simulator.simulate(sample, validate)
        for pos, sample in enumerate(samples)
        if sample.status == "ok" and validate
    }
    return _marked(samples, unit, sims, score)


def select_best_many(
    groups: Sequence[tuple[list[Explanation], UnitExamples]],
    windows: Mapping[str, Window],
    simulator: Simulator,
    score: Callable[[UnitExamples, Sequence[Simulation]], float | None],
) -> list[list[Explanation]]:
    """``select_best`` of every (samples, unit) group, in order, with the validation
    simulations of all of them in one ``simulator.simulate_batch`` call: an endpoint's calls go
    out across units under its one concurrency limit, in-process simulators batch across units.
    """
    validate = [[windows[w.window_id] for w in u.in_splits(Split.VALIDATE)] for _, u in groups]
    asked = [
        (g, pos)
        for g, (samples, _) in enumerate(groups)
        for pos, sample in enumerate(samples)
        if sample.status == "ok" and validate[g]
    ]
    jobs = [(groups[g][0][pos], validate[g]) for g, pos in asked]
    sims: list[dict[int, list[Simulation]]] = [{} for _ in groups]
    for (g, pos), mine in zip(asked, simulator.simulate_batch(jobs) if jobs else [], strict=True):
        sims[g][pos] = mine
    return [
        _marked(samples, unit, sims[g], score) for g, (samples, unit) in enumerate(groups)
    ]


def _marked(
    samples: list[Explanation],
    unit: UnitExamples,
    sims: Mapping[int, Sequence[Simulation]],
    score: Callable[[UnitExamples, Sequence[Simulation]], float | None],
) -> list[Explanation]:
    """``samples`` with their validation scores (from ``sims``, by sample position) and the
    best one ``selected``."""
    scores: dict[int, float | None] = {}
    for pos, sample in enumerate(samples):
        if sample.status == "ok":
            mine = sims.get(pos)
            scores[pos] = score(unit, mine) if mine else None
    best = _best(scores, samples)
    return [
        s.model_copy(update={"validation_score": scores.get(pos), "selected": pos == best})
        for pos, s in enumerate(samples)
    ]


def _best(scores: dict[int, float | None], samples: list[Explanation]) -> int | None:
    if not scores:
        return None

    def key(pos: int) -> tuple[bool, float, int]:
        value = scores[pos]
        if value is None or value != value:  # NaN counts as undefined
            return (True, 0.0, samples[pos].sample_index)
        return (False, -value, samples[pos].sample_index)

    return min(scores, key=key)
