"""Making the planted copy: choose live units, plant the triggers, save the copy as an ordinary
local model folder (with the tokenizer) under the cache, reload it and measure how much the
model's function changed.

The folder is named by the subject's weights hash, the plan and the seed, so a second audit with
the same plan reuses it (its ``neuroscribe_audit.json`` holds what was planted and measured).
Saving and reusing follow ``neuroscribe.copies``: a killed audit leaves no half-saved model.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from neuroscribe.audit.plan import corpus_windows
from neuroscribe.audit.spec import AuditPlan, PlantedCopy, PlantedUnit
from neuroscribe.collect.windows import special_frame
from neuroscribe.config import RunConfig
from neuroscribe.copies import (
    copy_subject_config,
    editable_subject,
    load_saved,
    save_copy,
    saved_record,
)
from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.models import cache_dir
from neuroscribe.surgery import function_change, mlp_input_sample, mlp_parts, plant_units

RECORD_FILE = "neuroscribe_audit.json"
FUNCTION_WINDOWS = 32
"""Windows (the first of the corpus) on which the function change is measured."""


def planted_copy(cfg: RunConfig, plan: AuditPlan) -> PlantedCopy:
    """The saved planted copy of ``cfg``'s subject for ``plan`` (made once, then reused)."""
    loaded = editable_subject(cfg)
    folder = cache_dir() / "audits" / content_hash(
        loaded.weights_hash, plan.model_dump(mode="json"), cfg.collect.firing_threshold
    )
    found = saved_record(folder, RECORD_FILE, PlantedCopy)
    if found is not None:
        return found
    frame = special_frame(loaded.tokenizer)
    ids = frame.wrap(corpus_windows(cfg, loaded.tokenizer))
    sample = mlp_input_sample(loaded.model, plan.layer, ids)
    units, unplanted = _choose_units(loaded.model, plan, sample.hidden, cfg)
    result = plant_units(
        loaded.model, plan.layer, units, [set(p.token_ids) for p in plan.plants], sample
    )
    checked = ids[:FUNCTION_WINDOWS]

    def describe(saved: Path) -> PlantedCopy:
        return PlantedCopy(
            folder=str(folder),
            subject=cfg.subject.model,
            subject_weights_hash=loaded.weights_hash,
            units=tuple(
                PlantedUnit(unit=r.unit, plant=p, relocated_to=r.relocated_to, auroc=r.auroc)
                for r, p in zip(result.records, plan.plants, strict=True)
            ),
            unplanted=tuple(unplanted),
            function_change=function_change(loaded.model, load_saved(saved), checked),
            function_windows=len(checked),
        )

    return save_copy(folder, result.model, loaded.tokenizer, RECORD_FILE, describe)


@torch.no_grad()
def live_units(model: Any, layer: int, hidden: torch.Tensor, threshold: float) -> list[int]:
    """Units of ``layers.{layer}.mlp`` that fire (activation above ``threshold``) somewhere on
    the MLP inputs ``hidden`` [positions, d_model]."""
    parts = mlp_parts(model, layer)
    x = hidden.to(next(model.parameters()).dtype)
    acts = parts.act(parts.fire(x))
    if parts.mult is not None:
        acts = acts * parts.mult(x)
    return [int(u) for u in torch.nonzero((acts > threshold).any(0)).flatten()]


def _choose_units(
    model: Any, plan: AuditPlan, hidden: torch.Tensor, cfg: RunConfig
) -> tuple[list[int], list[int]]:
    """(units to plant, unplanted units to collect alongside): live units at random, seeded."""
    live = live_units(model, plan.layer, hidden, cfg.collect.firing_threshold)
    n = len(plan.plants)
    if n > len(live):
        raise BadInput(
            f"{n} plants asked for, but only {len(live)} units of {plan.site} fire on the corpus"
        )
    rng = random.Random(plan.spec.seed)
    drawn = rng.sample(live, len(live))
    extra = n if plan.spec.unplanted is None else plan.spec.unplanted
    return drawn[:n], sorted(drawn[n : n + extra])


def copy_config(cfg: RunConfig, copy: PlantedCopy) -> RunConfig:
    """``cfg`` with the planted copy as its subject and the planted and unplanted units."""
    units = sorted([u.unit for u in copy.units] + list(copy.unplanted))
    return copy_subject_config(cfg, copy.folder, units)
