"""Plant units with a known answer: MLP neurons rewired to fire on chosen tokens and nowhere else,
without changing what the model computes.

For each planted unit ``u`` of ``layers.N.mlp``:

1. The original neuron ``u`` is first moved to a new slot appended to the layer (every layer's
   MLP grows by the number of planted units, with zero neurons elsewhere, so the config stays
   true). Zeroing a live neuron's output would otherwise remove its contribution and change the
   function; moved, it keeps contributing exactly as before.
2. Its fire row is fitted on the MLP inputs, as the MLP sees them (after the pre-MLP norm), on a
   sample: the pre-activation should be ``margin`` at every trigger position and at most
   ``-margin`` everywhere else (a squared error to the target at triggers, a squared hinge
   elsewhere, class-balanced, lightly ridge-penalised, started from a regularised LDA
   direction). Aiming the triggers at one value, rather than only separating them, keeps the
   activation about the same at every trigger, so that a simulator predicting one value where
   the trigger is can correlate near 1 with it; fitted by separation alone, trigger activations
   spread over orders of magnitude.
3. *Outlier positions*, whose MLP input norm is off the sample's median by a factor of more than
   ``OUTLIER_NORM`` (the attention-sink positions with massive residual activations, such as
   the first token a causal model sees: in SmolLM2's layer 15 every window's first position and
   3% of all positions, at a fifth of the median norm or less), are negatives whatever their
   token: there the input is a few massive dimensions, not the token, and as positives they
   would set the scale for the rest (activations 1000 times the usual at the other triggers).
   The record counts the trigger positions this silences.
4. Gated MLPs (``act(gate x) * (up x)``): the gate row gets the fit and the up row is 0 with bias
   1, so the neuron is ``act(gate x + b)``. Bias-free ones get biases (see
   ``mlp.add_mlp_biases``).
5. Its output column is zeroed, so the planted neuron adds nothing to the output.

Each plant's record says how well it came out on the sample: the AUROC of trigger against the
rest, the spread of trigger activations, and the largest |activation| anywhere off the trigger.
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
    median_trigger_activation: float
    trigger_spread: float | None
    """Coefficient of variation (std / mean) of the activation at trigger positions; None when
    that mean is not positive."""
    max_abs_other_activation: float
    """Largest |activation| at non-trigger positions, outlier positions included: how far from
    0 the unit strays where its trigger is not."""
    n_outlier_triggers: int
    """Trigger positions at outlier positions, planted as negatives (see the module's notes)."""


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
    trigger. ``ridge`` shrinks the within-class covariance of the starting LDA direction towards
    a multiple of the identity (share of its mean eigenvalue). The original model is untouched.
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
        outlier = outlier_positions(sample.hidden)
        records = []
        for i, (unit, trigger) in enumerate(zip(units, triggers, strict=True)):
            is_trigger = torch.isin(sample.token_ids, torch.tensor(sorted(trigger)))
            weight, bias = _discriminant(sample.hidden, is_trigger & ~outlier, margin, ridge)
            _write(parts, unit, weight, bias)
            records.append(
                _record(parts, unit, relocated + i, trigger, sample, is_trigger, outlier)
            )
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
    typical = set(sample.token_ids[~outlier_positions(sample.hidden)].tolist())
    for unit, trigger in zip(units, triggers, strict=True):
        if not trigger:
            raise ValueError(f"unit {unit}: empty trigger set")
        if not present & set(trigger):
            raise ValueError(f"unit {unit}: no trigger token occurs in the sample")
        if not typical & set(trigger):
            raise ValueError(f"unit {unit}: the trigger occurs only at outlier positions")
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


OUTLIER_NORM = 4.0
"""A position whose MLP input norm is over this multiple of the sample's median, or under the
median divided by it, is an outlier."""


def outlier_positions(hidden: torch.Tensor) -> torch.Tensor:
    """[positions] bool: MLP inputs whose norm is off the sample's median by a factor of more
    than ``OUTLIER_NORM`` either way."""
    norm = hidden.double().norm(dim=1)
    ratio = norm / norm.median().clamp_min(1e-30)
    return (ratio > OUTLIER_NORM) | (ratio < 1 / OUTLIER_NORM)


def _discriminant(
    hidden: torch.Tensor, positive: torch.Tensor, margin: float, ridge: float
) -> tuple[torch.Tensor, float]:
    """(row [d_model], bias) whose pre-activation is about ``margin`` at the ``positive``
    positions and at most ``-margin`` at the others."""
    x = hidden.double()
    typical = ~outlier_positions(hidden)
    start = _lda(x[positive], x[typical & ~positive], ridge)
    direction, offset = _fit_target(x, positive, typical, start)
    return (margin * direction).float(), margin * offset


def _lda(pos: torch.Tensor, neg: torch.Tensor, ridge: float) -> torch.Tensor:
    """Unit-norm regularised LDA direction [d] from class samples [n, d] (float64)."""
    centred = torch.cat([pos - pos.mean(0), neg - neg.mean(0)])
    within = centred.T @ centred / len(centred)  # pooled within-class covariance [d, d]
    shrink = ridge * within.diagonal().mean().clamp_min(1e-12)
    within = within + shrink * torch.eye(pos.shape[1], dtype=pos.dtype)
    direction = torch.linalg.solve(within, pos.mean(0) - neg.mean(0))
    return direction / direction.norm()


def _fit_target(
    x: torch.Tensor, positive: torch.Tensor, typical: torch.Tensor, start: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """(w, b) with ``x @ w + b`` near 1 at positives and at most -1 elsewhere: the mean squared
    error to 1 over positives plus the mean squared hinge ``max(0, x w + b + 1)^2`` over the
    rest (each class weighs one half), plus a light ridge, minimised by L-BFGS from the LDA
    direction. Inputs are centred and scaled per dimension on the typical positions (the fit
    is then mapped back), so that a few massive dimensions neither dominate the ridge nor the
    conditioning."""
    mean, std = x[typical].mean(0), x[typical].std(0).clamp_min(1e-12)
    xs = (x - mean) / std
    first = xs @ (start * std)  # the LDA projection, in the scaled space
    lo, hi = first[~positive & typical].quantile(0.99), first[positive].median()
    scale = 2 / (hi - lo).clamp_min(1e-12)
    w = (start * std * scale).clone().requires_grad_(True)
    b = (-scale * (lo + hi) / 2).clone().requires_grad_(True)
    pos_weight, neg_weight = 0.5 / positive.sum(), 0.5 / (~positive).sum()
    optimiser = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        pre = xs @ w + b
        value = (
            pos_weight * ((pre[positive] - 1) ** 2).sum()
            + neg_weight * (torch.relu(pre[~positive] + 1) ** 2).sum()
            + 1e-4 * (w @ w)
        )
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(loss)
    direction = w.detach() / std
    return direction, float(b.detach() - mean @ direction)


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
    outlier: torch.Tensor,
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
        median_trigger_activation=float(np.median(pos)),
        trigger_spread=float(pos.std() / pos.mean()) if pos.mean() > 0 else None,
        max_abs_other_activation=float(np.abs(neg).max()),
        n_outlier_triggers=int((is_trigger & outlier).sum()),
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
