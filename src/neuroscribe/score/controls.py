"""Reading scores against the controls: does an annotator beat chance on a unit?

Two controls go through the same simulators and scorers as every explanation: the shuffled
control (another unit's explanation, explainer ``control/shuffled``) and the n-gram baseline
explainer (``baseline/ngram``). For each annotator (a real explainer under one simulator) and
score kind, ``compare_with_controls`` counts the units where the annotator's score beats both
controls' scores of that kind under the same simulator. The view ``control_comparison``
(warehouse/views/control_comparison.sql) computes the same from the warehouse; a test holds the two
equal.

Rules, the same in Python and SQL:
- Only selected explanations with status ok count. The controls' own rows are not reported.
- A unit is compared when the annotator and both controls have a score row of that kind under
  that simulator, and not all three values are NULL (all NULL means the unit's truth gave
  nothing to score, e.g. constant activations on the windows).
- "Beats" is strict: a defined value beats a smaller one or a NULL; a NULL beats nothing. An
  undefined score (constant predictions) shows no skill, so it ranks below any defined one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from neuroscribe.records import Explanation, Record, Score

SHUFFLED_CONTROL = "control/shuffled"
BASELINE_EXPLAINER = "baseline/ngram"
CONTROL_EXPLAINERS = (SHUFFLED_CONTROL, BASELINE_EXPLAINER)


class ControlComparison(Record):
    """How often one annotator's scores of one kind beat both controls, over units."""

    explainer: str
    simulator: str
    score_kind: str
    n_units: int
    """Units compared (see the module's rules); at least 1."""
    n_beats_shuffled: int
    n_beats_baseline: int
    n_beats_both: int
    share_beats_both: float
    """n_beats_both / n_units."""
    mean_score: float | None
    """Mean of the annotator's defined scores on the compared units (None if none defined)."""
    mean_shuffled: float | None
    mean_baseline: float | None


def _beats(value: float | None, control: float | None) -> bool:
    return value is not None and (control is None or value > control)


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def compare_with_controls(
    scores: Sequence[Score],
    explanations: Sequence[Explanation],
    score_kinds: Sequence[str] | None = None,
) -> list[ControlComparison]:
    """One row per (explainer, simulator, score kind) with at least one compared unit, sorted.

    ``explanations`` give each score its unit and explainer; scores of explanations not given,
    not selected or not ok are ignored. ``score_kinds`` limits the kinds (default: all present).
    Raises ValueError on two scores of one (unit, explainer, simulator, kind).
    """
    by_id = {e.explanation_id: e for e in explanations if e.status == "ok" and e.selected}
    table: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for s in scores:
        e = by_id.get(s.explanation_id)
        if e is None or (score_kinds is not None and s.kind not in score_kinds):
            continue
        cell = table.setdefault((e.explainer, s.simulator, s.kind), {})
        if e.unit_key in cell:
            raise ValueError(
                f"two {s.kind} scores of unit {e.unit_key} by {e.explainer}|{s.simulator}"
            )
        cell[e.unit_key] = s.value

    rows = []
    for (explainer, simulator, kind), units in sorted(table.items()):
        if explainer in CONTROL_EXPLAINERS:
            continue
        shuffled = table.get((SHUFFLED_CONTROL, simulator, kind), {})
        baseline = table.get((BASELINE_EXPLAINER, simulator, kind), {})
        compared = [
            (units[u], shuffled[u], baseline[u])
            for u in sorted(units)
            if u in shuffled
            and u in baseline
            and not (units[u] is None and shuffled[u] is None and baseline[u] is None)
        ]
        if not compared:
            continue
        beats_s = [_beats(v, s) for v, s, _ in compared]
        beats_b = [_beats(v, b) for v, _, b in compared]
        n_both = sum(x and y for x, y in zip(beats_s, beats_b, strict=True))
        rows.append(
            ControlComparison(
                explainer=explainer,
                simulator=simulator,
                score_kind=kind,
                n_units=len(compared),
                n_beats_shuffled=sum(beats_s),
                n_beats_baseline=sum(beats_b),
                n_beats_both=n_both,
                share_beats_both=n_both / len(compared),
                mean_score=_mean(v for v, _, _ in compared),
                mean_shuffled=_mean(s for _, s, _ in compared),
                mean_baseline=_mean(b for _, _, b in compared),
            )
        )
    return rows
