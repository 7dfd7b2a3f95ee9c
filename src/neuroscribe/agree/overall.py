"""Agreement between simulators over all units at once."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from neuroscribe.agree.agree import ratings_matrix
from neuroscribe.agree.metrics import krippendorff_alpha_interval, pairable_count
from neuroscribe.records import Agreement, Explanation, Simulation
from neuroscribe.score.controls import SHUFFLED_CONTROL


def agree_overall(
    explanations: Sequence[Explanation], simulations: Sequence[Simulation]
) -> list[Agreement]:
    """``alpha_simulators_all_units``: Krippendorff's alpha (interval) between simulators, pooled
    over every unit.

    Items are the tokens of every (explanation, window) simulated, for the selected, ok
    explanations in ``explanations`` other than the shuffled control (its predictions are about
    another unit's explanation; agreement on it is not agreement about the unit). Predictions
    are rescaled to 0-1 as in ``agree_unit``. One row per simulator pair, plus one for all
    simulators when there are three or more; ``unit_key`` is None and ``n`` counts the pairable
    tokens. Nothing when fewer than two simulators simulated these explanations.
    """
    keep = {
        e.explanation_id
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer != SHUFFLED_CONTROL
    }
    by_simulator: dict[str, list[Simulation]] = {}
    for s in simulations:
        if s.explanation_id in keep:
            by_simulator.setdefault(s.simulator, []).append(s)
    names = sorted(by_simulator)
    groups = [tuple(pair) for pair in combinations(names, 2)]
    if len(names) >= 3:
        groups.append(tuple(names))
    rows = []
    for group in groups:
        ratings = ratings_matrix({name: by_simulator[name] for name in group})
        alpha = krippendorff_alpha_interval(ratings)
        rows.append(
            Agreement(
                unit_key=None,
                kind="alpha_simulators_all_units",
                annotators=group,
                value=alpha.value,
                reason=alpha.reason,
                n=pairable_count(ratings),
            )
        )
    return rows
