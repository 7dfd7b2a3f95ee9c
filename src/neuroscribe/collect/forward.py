"""What one forward pass over the corpus reads: the hooked sites, the units' columns, and each
batch's activations at them (``activations``), gathered without an extra pass over them."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.sae import SAE, check_sae_fits
from neuroscribe.collect.sites import (
    ResolvedSite,
    StopForward,
    _layout,
    _resolve,
    capture_many,
    resolve_sites,
)
from neuroscribe.collect.windows import Frame, RawWindow
from neuroscribe.config import RunConfig


@dataclass(frozen=True)
class Plan:
    """What one forward pass reads: the hooked sites, what each keeps, and the units' columns."""

    sites: list[ResolvedSite]
    keep: list[list[int] | None]
    """Per site, the indices its hook keeps (None: the whole width, for an SAE to encode)."""
    columns: list[tuple[str, int]]
    """(site, index) of each column of the activations handed to selection."""
    sae: SAE | None = None
    features: list[int] | None = None


def plan_units(cfg: RunConfig, model: Any, sae: SAE | None = None) -> Plan:
    """Resolve the sites (and fit the SAE) against the loaded model; CollectError on mismatch.
    A count of units is checked against the widths before its indices are listed, so a huge
    count fails at once with one line instead of running out of memory. ``units = "all"``
    takes every index of each site's width (every feature of the SAE)."""
    count = cfg.collect.units if isinstance(cfg.collect.units, int) else None
    if sae is not None:
        n_layers = len(_layout(model)[0])
        if sae.site.layer >= n_layers:
            raise CollectError(
                f"SAE {sae.sae_id} reads '{sae.site}' but the model has {n_layers} layers"
            )
        site = _resolve(model, sae.site, [])
        if cfg.every_unit:
            count = sae.d_sae
        elif count is not None and count > sae.d_sae:
            raise CollectError(
                f"collect.units = {count} asks for features 0..{count - 1}, but SAE "
                f"{sae.sae_id} has {sae.d_sae} (features 0..{sae.d_sae - 1})"
            )
        units = list(range(sae.d_sae)) if cfg.every_unit else cfg.unit_indices
        check_sae_fits(sae, site.width, units)
        return Plan([site], [None], [(str(sae.site), u) for u in units], sae, units)
    if cfg.every_unit:
        sites = resolve_sites(model, cfg.collect.site, [])
        keep: list[list[int] | None] = [list(range(s.width)) for s in sites]
        columns = [(str(s.name), u) for s in sites for u in range(s.width)]
        return Plan(sites, keep, columns)
    if count is not None:
        for s in resolve_sites(model, cfg.collect.site, []):
            if count > s.width:
                raise CollectError(
                    f"collect.units = {count} asks for units 0..{count - 1}, but site "
                    f"'{s.name}' has {s.width} (units 0..{s.width - 1})"
                )
    units = cfg.unit_indices
    sites = resolve_sites(model, cfg.collect.site, units)
    columns = [(str(s.name), u) for s in sites for u in units]
    return Plan(sites, [list(units)] * len(sites), columns)


def activations(
    model: Any,
    plan: Plan,
    frame: Frame,
    batches: Iterable[list[RawWindow]],
) -> Iterator[tuple[list[RawWindow], torch.Tensor]]:
    """Per batch of windows: the windows and the units' activations, float32 [batch, pos, unit]."""
    base = model.base_model  # skip the LM head: the sites are always inside the base model
    start = len(frame.prefix)
    # Each hook copies its site's window positions into its columns of one buffer, reused
    # across batches: the copy reads the site's output while it is still in the CPU's cache,
    # and the model's own tensor is freed as in a bare forward pass (held until the end of the
    # batch, a fresh one would be paged in every batch).
    ends = list(
        itertools.accumulate(
            len(k) if k is not None else s.width for s, k in zip(plan.sites, plan.keep, strict=True)
        )
    )
    bounds = list(zip([0, *ends[:-1]], ends, strict=True))
    buffer = torch.empty(0)
    width = 0

    def into_buffer(i: int, x: torch.Tensor) -> torch.Tensor:
        lo, hi = bounds[i]
        out = buffer[: x.shape[0], :, lo:hi]
        out.copy_(x[:, start : start + width])
        return out

    store = into_buffer if plan.sae is None else None
    for batch in batches:
        ids = frame.wrap(batch).to(model.device)
        width = len(batch[0].token_ids)
        shape = (len(batch), width, len(plan.columns))
        if store is not None and (buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]):
            buffer = torch.empty(shape)
        # The hooks raise StopForward once they have every site's activations: the layers
        # after the last site are never run.
        with (
            torch.inference_mode(),
            capture_many(plan.sites, plan.keep, store) as captured,
            contextlib.suppress(StopForward),
        ):
            base(input_ids=ids, attention_mask=torch.ones_like(ids))
        if not captured:
            names = ", ".join(str(s.name) for s in plan.sites)
            raise CollectError(f"the hooks at sites {names} did not all fire")
        if plan.sae is not None:
            with torch.inference_mode():
                acts = plan.sae.encode(captured[0][:, start : start + width], plan.features)
        else:
            acts = buffer[: len(batch)]
        yield batch, acts  # only valid until the next batch: the buffer is reused
