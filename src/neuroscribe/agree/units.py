"""The agree stage over a run: simulators, explainers and units compared from stored predictions.

No new LLM calls: everything here reads the simulations and scores already made.
"""

from __future__ import annotations

from collections.abc import Sequence

from neuroscribe.agree.agree import agree_across_units, agree_explainers, agree_unit, clarity
from neuroscribe.agree.control import agree_with_control
from neuroscribe.agree.overall import agree_overall
from neuroscribe.agree.texts import agree_explanation_texts
from neuroscribe.records import Agreement, Explanation, Score, Simulation
from neuroscribe.score.controls import SHUFFLED_CONTROL


def agree_units(
    explanations: Sequence[Explanation],
    simulations: Sequence[Simulation],
    scores: Sequence[Score],
) -> list[Agreement]:
    """Agreement between simulators (per explanation), between explainers (per unit), across
    units, and each unit's clarity figure. No new LLM calls: only stored predictions."""
    sims_by_expl: dict[str, dict[str, list[Simulation]]] = {}
    for s in simulations:
        sims_by_expl.setdefault(s.explanation_id, {}).setdefault(s.simulator, []).append(s)
    real = [
        e
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer != SHUFFLED_CONTROL
    ]
    controls = {
        e.unit_key: e
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer == SHUFFLED_CONTROL
    }
    by_unit: dict[str, list[Explanation]] = {}  # grouped once: a catalogue has many units
    for e in real:
        by_unit.setdefault(e.unit_key, []).append(e)
    out: list[Agreement] = []
    for key in sorted(by_unit):
        mine = by_unit[key]
        # Simulators agree over the same (explanation, window, token) items of this unit.
        by_sim: dict[str, list[Simulation]] = {}
        for e in mine:
            for simulator, sims in sims_by_expl.get(e.explanation_id, {}).items():
                by_sim.setdefault(simulator, []).extend(sims)
        window_ids = sorted({s.window_id for sims in by_sim.values() for s in sims})
        unit_stats = list(agree_unit(key, by_sim, window_ids))
        # Explainers agree when their explanations make the simulators predict alike.
        per_explainer = {
            e.explainer: [
                s for sims in sims_by_expl.get(e.explanation_id, {}).values() for s in sims
            ]
            for e in mine
        }
        unit_stats.extend(agree_explainers(key, per_explainer))
        # ... beyond what each simulator shows between an explanation and the shuffled control.
        control = controls.get(key)
        control_sims = [
            s
            for sims in sims_by_expl.get(control.explanation_id if control else "", {}).values()
            for s in sims
        ]
        unit_stats.extend(agree_with_control(key, per_explainer, control_sims))
        unit_stats.extend(agree_explanation_texts(key, {e.explainer: e.text for e in mine}))
        value = clarity(unit_stats)
        out.extend(unit_stats)
        out.append(
            Agreement(
                unit_key=key,
                kind="clarity",
                annotators=(),
                value=value,
                reason=None if value is not None else "no agreement statistic available",
                n=len(unit_stats),
            )
        )
    out.extend(agree_across_units(scores, real))
    out.extend(agree_overall(real, simulations))
    return out
