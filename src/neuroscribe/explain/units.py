"""The explain stage over a run's units: every explainer, best-of-n, the shuffled control.

Units go to an explainer ``2 x max_concurrency`` at a time through ``llm.fanout.fan_out``, so an
endpoint keeps its ``concurrency`` requests in flight while best-of-n selection of the units
already explained (which simulates on the validation split) runs between chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroscribe.config import RunConfig
from neuroscribe.explain.base import Explainer
from neuroscribe.explain.factory import make_explainer
from neuroscribe.explain.select import select_best
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.fanout import fan_out
from neuroscribe.progress import task
from neuroscribe.records import Explanation, UnitExamples, Window
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.score.score import validation_score


def explain_units(
    units: Sequence[UnitExamples], windows: Mapping[str, Window], cfg: RunConfig, ledger: Ledger
) -> list[Explanation]:
    """Every explainer of ``cfg.explain.explainers`` on every live unit; several samples are
    reduced to one by best-of-n on the validation split (never the split that is reported),
    with the simulator ``cfg.explain.select_with``. With ``cfg.score.controls``, the shuffled
    control explanations (``shuffled_controls``) follow."""
    from neuroscribe.simulate import make_simulator  # simulate uses explain's renderers

    live = [u for u in units if not u.stats.dead]
    selector = make_simulator(
        cfg.explain.select_with,
        cfg.simulate,
        ledger,
        annotator=cfg.annotators.get(cfg.explain.select_with),
    )
    out: list[Explanation] = []
    for name in cfg.explain.explainers:
        explainer = make_explainer(name, cfg.explain, ledger, cfg.annotators.get(name))
        seeds = [cfg.collect.seed + i for i in range(len(live))]
        step = max(1, 2 * explainer.max_concurrency)
        with task(f"explain  {name}", len(live)) as advance:
            for start in range(0, len(live), step):
                chunk = live[start : start + step]
                results = explain_many(
                    explainer, chunk, windows, cfg.explain.samples, seeds[start : start + step]
                )
                for unit, samples in zip(chunk, results, strict=True):
                    if sum(s.status == "ok" for s in samples) > 1:
                        samples = select_best(samples, unit, windows, selector, validation_score)
                    out.extend(samples)
                advance(len(chunk))
    if cfg.score.controls:
        out.extend(shuffled_controls(out, [u.unit.key for u in live]))
    return out


def explain_many(
    explainer: Explainer,
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    n: int,
    seeds: Sequence[int],
) -> list[list[Explanation]]:
    """``explainer.explain(units[i], windows, n, seeds[i])`` for every unit, in order, with up
    to the explainer's ``max_concurrency`` units in flight. A unit's failure is its own typed
    failure; it never stops the others."""
    return fan_out(
        lambda us: explainer.aexplain(us[0], windows, n, us[1]),
        list(zip(units, seeds, strict=True)),
        explainer.max_concurrency,
    )


def silent_annotators(
    explanations: Sequence[Explanation], explainers: Sequence[str] | None = None
) -> list[str]:
    """The explainers that produced no usable explanation: every one of their samples failed
    (an endpoint that refused every call, a model that never answered in one sentence). With
    ``explainers`` (the configured names), those with no explanation at all are named too.
    The shuffled control is never an annotator. In order of first appearance, configured
    names first. The flow and CLI use it to warn at the top of a run's summary."""
    names = list(dict.fromkeys([*(explainers or ()), *(e.explainer for e in explanations)]))
    ok = {e.explainer for e in explanations if e.status == "ok"}
    return [n for n in names if n != SHUFFLED_CONTROL and n not in ok]


def shuffled_controls(
    explanations: Sequence[Explanation], unit_keys: Sequence[str]
) -> list[Explanation]:
    """Chance-level control: each unit gets the selected explanation of the next unit (cyclic),
    from the first explainer that explained both. Needs at least two units."""
    if len(unit_keys) < 2:
        return []
    chosen: dict[tuple[str, str], Explanation] = {}
    for e in explanations:
        if e.status == "ok" and e.selected:
            chosen.setdefault((e.unit_key, e.explainer), e)
    explainers = list(dict.fromkeys(e.explainer for e in explanations))
    controls = []
    for i, key in enumerate(unit_keys):
        donor_key = unit_keys[(i + 1) % len(unit_keys)]
        donor = next((chosen[(donor_key, x)] for x in explainers if (donor_key, x) in chosen), None)
        if donor is None:
            continue
        controls.append(
            Explanation(
                explanation_id=content_hash(key, SHUFFLED_CONTROL, donor.explanation_id),
                unit_key=key,
                explainer=SHUFFLED_CONTROL,
                text=donor.text,
                prompt=donor.prompt,
            )
        )
    return controls
