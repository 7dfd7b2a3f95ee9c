"""One explainer over many units, as many in flight as the explainer allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroscribe.explain.base import Explainer
from neuroscribe.llm.base import in_unit
from neuroscribe.llm.fanout import fan_out
from neuroscribe.records import Explanation, UnitExamples, Window


def explain_many(
    explainer: Explainer,
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    n: int,
    seeds: Sequence[int],
) -> list[list[Explanation]]:
    """``explainer.explain(units[i], windows, n, seeds[i])`` for every unit, in order, with up
    to the explainer's ``max_concurrency`` units in flight. A unit's failure is its own typed
    failure; it never stops the others. Each unit's calls are recorded as its own."""
    return fan_out(
        lambda us: in_unit(us[0].unit.key, explainer.aexplain(us[0], windows, n, us[1])),
        list(zip(units, seeds, strict=True)),
        explainer.max_concurrency,
    )
