"""Which units of a comparison to explain: the top of the diff, as pipeline configs.

A comparison ranks units by activation change (1 - best-partner r; ``warehouse.comparisons.
diff_candidates``): units without a partner (new, lost) and units whose one-to-one partner is
close, which are 'changed' when their explanations differ, so that partner is explained too.
Units already explained in the warehouse are reused, not explained again. What is left becomes
one pipeline config per subject, site and SAE (``flows.pipeline.run_flow`` runs each), with the
comparison's corpus, collection settings and annotators.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neuroscribe.config import RunConfig
from neuroscribe.records import Subject

Unit = tuple[str, str, int, str | None]
"""(subject_id, site, unit_index, sae_id): sae_id None for the subject's own units."""


def candidate_units(candidates: list[dict[str, Any]]) -> list[Unit]:
    """The units of ``diff_candidates`` rows and their close partners, in order, once each."""
    units: dict[Unit, None] = {}
    for c in candidates:
        units[(c["subject_id"], c["site"], int(c["unit_index"]), c.get("sae_id"))] = None
        if c.get("partner_index") is not None:
            partner = (c["partner_subject_id"], c["partner_site"], int(c["partner_index"]),
                       c.get("partner_sae_id"))
            units[partner] = None
    return list(units)


def explain_configs(
    cfg: RunConfig,
    subjects: list[Subject],
    units: list[Unit],
    explained: set[Unit],
    saes: dict[str, str] | None = None,
) -> list[RunConfig]:
    """One pipeline config per (subject, site, SAE) for the ``units`` not in ``explained``: the
    subject's model, that site, the SAE's folder (``saes``: folder by ``sae_id``) for SAE
    latents, those unit indices; everything else as in ``cfg``."""
    names = {s.subject_id: s.name for s in subjects}
    folders = saes or {}
    todo: dict[tuple[str, str, str | None], set[int]] = defaultdict(set)
    for subject_id, site, index, sae_id in units:
        if (subject_id, site, index, sae_id) not in explained:
            todo[subject_id, site, sae_id].add(index)
    configs = []
    for (subject_id, site, sae_id), indices in sorted(
        todo.items(), key=lambda t: (t[0][0], t[0][1], t[0][2] or "")
    ):
        subject = cfg.subject.model_copy(update={"model": names[subject_id]})
        collect = cfg.collect.model_copy(
            update={"site": site, "units": sorted(indices),
                    "sae": folders[sae_id] if sae_id else None}
        )
        configs.append(
            cfg.model_copy(
                update={"subject": subject, "collect": collect, "compare": type(cfg.compare)()}
            )
        )
    return configs
