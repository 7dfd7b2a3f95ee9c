"""Which units of a comparison to explain: the top of the diff, as pipeline configs.

A comparison ranks units by activation change (1 - best-partner r; ``warehouse.comparisons.
diff_candidates``): units without a partner (new, lost) and units whose partner is close, which
are 'changed' when their explanations differ, so the partner is explained too. Units already
explained in the warehouse are reused, not explained again. What is left becomes one pipeline
config per subject and site (``flows.pipeline.run_flow`` runs each), with the comparison's
corpus, collection settings and annotators.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neuroscribe.config import RunConfig
from neuroscribe.records import Subject

Unit = tuple[str, str, int]
"""(subject_id, site, unit_index)"""


def candidate_units(candidates: list[dict[str, Any]]) -> list[Unit]:
    """The units of ``diff_candidates`` rows and their close partners, in order, once each."""
    units: dict[Unit, None] = {}
    for c in candidates:
        units[(c["subject_id"], c["site"], int(c["unit_index"]))] = None
        if c.get("partner_index") is not None:
            units[(c["partner_subject_id"], c["partner_site"], int(c["partner_index"]))] = None
    return list(units)


def explain_configs(
    cfg: RunConfig, subjects: list[Subject], units: list[Unit], explained: set[Unit]
) -> list[RunConfig]:
    """One pipeline config per (subject, site) for the ``units`` not in ``explained``: the
    subject's model, that site, those unit indices; everything else as in ``cfg``."""
    names = {s.subject_id: s.name for s in subjects}
    todo: dict[tuple[str, str], set[int]] = defaultdict(set)
    for subject_id, site, index in units:
        if (subject_id, site, index) not in explained:
            todo[subject_id, site].add(index)
    configs = []
    for (subject_id, site), indices in sorted(todo.items()):
        subject = cfg.subject.model_copy(update={"model": names[subject_id]})
        collect = cfg.collect.model_copy(
            update={"site": site, "units": sorted(indices), "sae": None}
        )
        configs.append(
            cfg.model_copy(
                update={"subject": subject, "collect": collect, "compare": type(cfg.compare)()}
            )
        )
    return configs
