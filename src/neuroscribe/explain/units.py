"""The explain stage over a run's units: every explainer, best-of-n, the shuffled control.

It composes explainers with a simulator (best-of-n simulates the samples on the validation
split), so it sits above both packages and ``neuroscribe.explain`` does not import it (the fuzz
judges of ``simulate`` render marked tokens with ``explain.render``).

Units go to an explainer ``2 x max_concurrency`` at a time through ``llm.fanout.fan_out``, so an
endpoint keeps its ``concurrency`` requests in flight. Between chunks, best-of-n selects among
the samples of the chunk's units together (``select_best_many``): the selecting simulator gets
their validation jobs in one ``simulate_batch`` call, so an endpoint's calls go out across units
under its one concurrency limit, and in-process simulators batch across units.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from neuroscribe.config import RunConfig
from neuroscribe.explain.factory import make_explainer
from neuroscribe.explain.many import explain_many
from neuroscribe.explain.select import select_best_many
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Ledger
from neuroscribe.progress import track_chunks
from neuroscribe.records import Explanation, UnitExamples, Window
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.score.score import validation_score
from neuroscribe.simulate import Simulator, make_simulator


def explain_units(
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    only: Collection[str] | None = None,
) -> list[Explanation]:
    """Every explainer of ``cfg.explain.explainers`` on every live unit; several samples are
    reduced to one by best-of-n on the validation split (never the split that is reported),
    with the simulator ``cfg.explain.select_with``. With ``cfg.score.controls``, the shuffled
    control explanations (``shuffled_controls``) follow. With ``only`` (unit keys), the other
    units are skipped; every unit keeps the sampling seed it has in a run of all of them."""
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
        seeded = [
            (u, cfg.collect.seed + i)
            for i, u in enumerate(live)
            if only is None or u.unit.key in only
        ]
        step = 2 * explainer.max_concurrency
        for chunk in track_chunks(seeded, step, f"explain  {name}"):
            units_in, seeds = [u for u, _ in chunk], [s for _, s in chunk]
            results = explain_many(explainer, units_in, windows, cfg.explain.samples, seeds)
            out.extend(e for samples in select_in(results, units_in, windows, selector)
                       for e in samples)
    if cfg.score.controls:
        out.extend(shuffled_controls(out, [u.unit.key for u in live]))
    return out


def select_in(
    results: Sequence[list[Explanation]],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    selector: Simulator,
) -> list[list[Explanation]]:
    """Each unit's samples, best-of-n applied to the units with more than one ok sample (all of
    them at once); the others' samples unchanged."""
    chosen = [i for i, samples in enumerate(results) if sum(s.status == "ok" for s in samples) > 1]
    groups = [(results[i], units[i]) for i in chosen]
    selected = dict(zip(chosen, select_best_many(groups, windows, selector, validation_score),
                        strict=True))
    return [selected.get(i, samples) for i, samples in enumerate(results)]


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
