"""Plant units with a known answer: MLP neurons rewired to fire on chosen tokens and nowhere else,
without changing what the model computes.

For each planted unit ``u`` of ``layers.N.mlp``:

1. The original neuron ``u`` is first moved to a new slot appended to the layer (every layer's
   MLP grows by the number of planted units, with zero neurons elsewhere, so the config stays
   true). Zeroing a live neuron's output would otherwise remove its contribution and change the
   function; moved, it keeps contributing exactly as before.
2. Its fire row becomes a linear discriminant between the MLP inputs, as the MLP sees them
   (after the pre-MLP norm), at the trigger tokens and elsewhere on a sample (regularised LDA,
   refined by a class-balanced logistic fit, which separates several-word concepts better); the
   bias puts the threshold midway between the highest non-trigger and the lowest trigger
   projection, and the scale puts both ``margin`` pre-activation units away from it, so the
   activation is about ``margin`` at triggers and about act(-margin) ~ 0 elsewhere.
3. Gated MLPs (``act(gate x) * (up x)``): the gate row gets the discriminant and the up row is
   0 with bias 1, so the neuron is ``act(gate x + b)``. Bias-free ones get biases (see
   ``mlp.add_mlp_biases``).
4. Its output column is zeroed, so the planted neuron adds nothing to the output.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from neuroscribe.surgery.mlp import (
    MlpParts,
    add_mlp_biases,
    ensure_bias,
    mlp_parts,
    neuron_rows,
    widen_mlps,
)


@dataclass(frozen=True)
class MlpInputSample:
    """MLP inputs of one layer on a sample of windows, at the unmasked positions."""

    hidden: torch.Tensor  # [positions, d_model] float32
    token_ids: torch.Tensor  # [positions] long


class PlantRecord(BaseModel):
    """What was planted in one unit and how well it separates its trigger on the sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: int
    relocated_to: int
    """Where the unit's original neuron now lives (same weights, same contribution)."""
    trigger_ids: tuple[int, ...]
    n_trigger: int
    """Trigger positions in the sample."""
    n_other: int
    auroc: float
    """P(activation at a trigger > activation elsewhere) on the sample; ties count half."""
    share_above_max_other: float
    """Share of trigger positions whose activation exceeds every non-trigger activation."""
    min_trigger_activation: float
    max_other_activation: float


@dataclass(frozen=True)
class PlantResult:
    model: Any
    records: list[PlantRecord]
    saveable: bool
    """False when biases were added that the model's config cannot declare (Gemma): the planted
    model then works in memory but loses them when saved and loaded again."""


class _Stop(Exception):
    pass


@torch.no_grad()
def mlp_input_sample(
    model: Any,
    layer: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    batch_size: int = 16,
) -> MlpInputSample:
    """Run ``input_ids`` [windows, tokens] up to ``layers.{layer}``'s MLP and keep its inputs."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    module = mlp_parts(model, layer).input_module
    device = next(model.parameters()).device
    got: list[torch.Tensor] = []

    def keep(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        got.append((args[0] if args else kwargs["hidden_states"]).float().cpu())
        raise _Stop  # nothing after this module is needed

    hidden, tokens = [], []
    handle = module.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        for start in range(0, len(input_ids), batch_size):
            ids = input_ids[start : start + batch_size]
            mask = attention_mask[start : start + batch_size]
            with contextlib.suppress(_Stop):
                model(input_ids=ids.to(device), attention_mask=mask.to(device))
            keep_pos = mask.bool()
            hidden.append(got.pop()[keep_pos])
            tokens.append(ids[keep_pos])
    finally:
        handle.remove()
    return MlpInputSample(torch.cat(hidden), torch.cat(tokens))


def plant_units(
    model: Any,
    layer: int,
    units: Sequence[int],
    triggers: Sequence[Collection[int]],
    sample: MlpInputSample,
    *,
    margin: float = 20.0,
    ridge: float = 0.01,
) -> PlantResult:
    """A copy of ``model`` in which unit ``units[i]`` of ``layers.{layer}.mlp`` fires on the
    token ids ``triggers[i]`` (one word's tokens, or a concept's) and nowhere else.

    ``sample`` holds that layer's MLP inputs (``mlp_input_sample``) on windows that contain every
    trigger. ``ridge`` shrinks the within-class covariance towards a multiple of the identity
    (share of its mean eigenvalue). The original model is untouched.
    """
    parts = mlp_parts(model, layer)
    width = parts.width
    _check(units, triggers, width, sample)
    planted = copy.deepcopy(model)
    relocated = widen_mlps(planted, len(units))  # the first new slot
    parts = mlp_parts(planted, layer)
    saveable = True
    with torch.no_grad():
        if getattr(parts.fire, "bias", None) is None:
            saveable = add_mlp_biases(planted)
        for module in (parts.fire, parts.mult):
            if module is not None:
                ensure_bias(module)
        for i, unit in enumerate(units):
            _move(parts, unit, relocated + i)
        records = []
        for i, (unit, trigger) in enumerate(zip(units, triggers, strict=True)):
            is_trigger = torch.isin(sample.token_ids, torch.tensor(sorted(trigger)))
            weight, bias = _discriminant(sample.hidden, is_trigger, margin, ridge)
            _write(parts, unit, weight, bias)
            records.append(_record(parts, unit, relocated + i, trigger, sample, is_trigger))
    return PlantResult(planted, records, saveable)


def _check(
    units: Sequence[int],
    triggers: Sequence[Collection[int]],
    width: int,
    sample: MlpInputSample,
) -> None:
    if len(units) != len(triggers):
        raise ValueError(f"{len(units)} units but {len(triggers)} trigger sets")
    if len(set(units)) != len(units) or any(not 0 <= u < width for u in units):
        raise ValueError(f"units must be distinct and within 0..{width - 1}: {list(units)}")
    present = set(sample.token_ids.tolist())
    for unit, trigger in zip(units, triggers, strict=True):
        if not trigger:
            raise ValueError(f"unit {unit}: empty trigger set")
        if not present & set(trigger):
            raise ValueError(f"unit {unit}: no trigger token occurs in the sample")
        if present <= set(trigger):
            raise ValueError(f"unit {unit}: the sample has no non-trigger position")


def _move(parts: MlpParts, src: int, dst: int) -> None:
    """Copy neuron ``src`` into the empty slot ``dst`` (rows, biases, output column)."""
    for module, side in parts.projections():
        rows = neuron_rows(module, side)
        rows[dst] = rows[src]
        if side == "out":  # fire/mult biases exist by now; ensure_bias only types them
            bias = ensure_bias(module)
            bias[dst] = bias[src]


def _discriminant(
    hidden: torch.Tensor, is_trigger: torch.Tensor, margin: float, ridge: float
) -> tuple[torch.Tensor, float]:
    """(row [d_model], bias) with pre-activation ~ +margin or more at triggers, ~ -margin or
    less elsewhere on the sample."""
    x = hidden.double()
    pos, neg = x[is_trigger], x[~is_trigger]
    direction = _refine(x, is_trigger, _lda(pos, neg, ridge))
    proj_pos, proj_neg = pos @ direction, neg @ direction
    lo, hi = float(proj_neg.max()), float(proj_pos.min())
    if hi <= lo:  # not separable on the sample: separate the bulk; the record says how well
        lo = float(torch.quantile(proj_neg, 0.99))
        hi = max(float(proj_pos.median()), lo + float(proj_neg.std()))
    scale = 2 * margin / (hi - lo)
    threshold = (lo + hi) / 2
    return (scale * direction).float(), -scale * threshold


def _lda(pos: torch.Tensor, neg: torch.Tensor, ridge: float) -> torch.Tensor:
    """Unit-norm regularised LDA direction [d] from class samples [n, d] (float64)."""
    centred = torch.cat([pos - pos.mean(0), neg - neg.mean(0)])
    within = centred.T @ centred / len(centred)  # pooled within-class covariance [d, d]
    shrink = ridge * within.diagonal().mean().clamp_min(1e-12)
    within = within + shrink * torch.eye(pos.shape[1], dtype=pos.dtype)
    direction = torch.linalg.solve(within, pos.mean(0) - neg.mean(0))
    return direction / direction.norm()


def _refine(x: torch.Tensor, is_trigger: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Class-balanced logistic regression started from the LDA direction.

    LDA assumes one Gaussian per class; a concept's trigger positions are several clusters
    (one per word) and the rest are many, so the best separating plane can differ from LDA's.
    The logistic fit moves it towards the plane that separates the sample; light weight decay
    keeps it from chasing single points.
    """
    scale = x.std(0).mean().clamp_min(1e-12)
    xs = (x - x.mean(0)) / scale  # conditioning only; the direction is mapped back below
    w = (start * scale).clone().requires_grad_(True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    target = is_trigger.double()
    weight = torch.where(is_trigger, 0.5 / is_trigger.sum(), 0.5 / (~is_trigger).sum())
    optimiser = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        logits = xs @ w + b
        value = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none")).sum() + 1e-4 * (w @ w)
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(loss)
    direction = w.detach() / scale
    return direction / direction.norm()


def _write(parts: MlpParts, unit: int, weight: torch.Tensor, bias: float) -> None:
    fire = neuron_rows(parts.fire, "out")
    fire[unit] = weight.to(fire.dtype)
    ensure_bias(parts.fire)[unit] = bias
    if parts.mult is not None:  # neuron = act(gate) * 1
        neuron_rows(parts.mult, "out")[unit] = 0
        ensure_bias(parts.mult)[unit] = 1
    neuron_rows(parts.out, "in")[unit] = 0


def _record(
    parts: MlpParts,
    unit: int,
    relocated_to: int,
    trigger: Collection[int],
    sample: MlpInputSample,
    is_trigger: torch.Tensor,
) -> PlantRecord:
    acts = unit_activation(parts, unit, sample.hidden).double().numpy()
    pos, neg = acts[is_trigger.numpy()], acts[~is_trigger.numpy()]
    ordered = np.sort(neg)
    below = np.searchsorted(ordered, pos, "left")
    at_most = np.searchsorted(ordered, pos, "right")
    return PlantRecord(
        unit=unit,
        relocated_to=relocated_to,
        trigger_ids=tuple(sorted(trigger)),
        n_trigger=len(pos),
        n_other=len(neg),
        auroc=float(np.mean((below + at_most) / 2) / len(neg)),
        share_above_max_other=float(np.mean(pos > ordered[-1])),
        min_trigger_activation=float(pos.min()),
        max_other_activation=float(ordered[-1]),
    )


@torch.no_grad()
def unit_activation(parts: MlpParts, unit: int, hidden: torch.Tensor) -> torch.Tensor:
    """The neuron's activation [positions] on MLP inputs ``hidden`` [positions, d_model],
    computed as the block computes it."""
    weight = neuron_rows(parts.fire, "out")
    x = hidden.to(device=weight.device, dtype=weight.dtype)

    def pre(module: Any) -> torch.Tensor:
        out = x @ neuron_rows(module, "out")[unit]
        bias = getattr(module, "bias", None)
        return out + bias[unit] if bias is not None else out

    act = parts.act(pre(parts.fire))
    return (act * pre(parts.mult) if parts.mult is not None else act).float().cpu()
