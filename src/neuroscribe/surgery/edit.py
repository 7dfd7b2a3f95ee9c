"""Same-function edits of a model and the check that they kept the function.

- ``permute_mlp``: a copy whose MLP neurons of one layer are reordered (fire and mult rows, their
  biases and the output columns move together, so the output is unchanged up to float rounding).
- ``reinitialised_copy``: the same architecture with the model class's own initialisation, for
  the random-model null.
- ``function_change``: the largest absolute difference of two models' final hidden states (and
  logits, where the model has them) on a batch of token windows.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from neuroscribe.surgery.mlp import mlp_parts, neuron_rows


def permute_mlp(model: Any, layer: int, perm: Sequence[int] | torch.Tensor) -> Any:
    """A deep copy of ``model`` whose neuron ``j`` of ``layers.{layer}.mlp`` is the original's
    neuron ``perm[j]``; the original is untouched.

    So the copy's activations are ``original_activations[..., perm]``, and the original's neuron
    ``i`` is the copy's neuron ``argsort(perm)[i]``.
    """
    index = torch.as_tensor(perm, dtype=torch.long)
    width = mlp_parts(model, layer).width
    if sorted(index.tolist()) != list(range(width)):
        raise ValueError(f"perm must be a permutation of 0..{width - 1}")
    permuted = copy.deepcopy(model)
    parts = mlp_parts(permuted, layer)
    with torch.no_grad():
        for module, side in parts.projections():
            rows = neuron_rows(module, side)  # [neurons, hidden]
            rows.copy_(rows[index.to(rows.device)])  # advanced indexing copies before writing
            bias = getattr(module, "bias", None)
            if side == "out" and bias is not None:  # the output bias is not per neuron
                bias.copy_(bias[index.to(bias.device)])
    return permuted


def reinitialised_copy(model: Any, seed: int) -> Any:
    """A fresh model of the same class and config, initialised by the class's own init under
    ``torch.manual_seed(seed)``; same dtype and device as ``model``, in eval mode."""
    param = next(model.parameters())
    config = copy.deepcopy(model.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = model.__class__(config)
    return fresh.to(dtype=param.dtype, device=param.device).eval()


@torch.no_grad()
def function_change(
    model_a: Any,
    model_b: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> float:
    """Largest |a - b| over the final hidden states and, where both models give them, the
    logits, at the unmasked positions of ``input_ids`` [windows, tokens].

    Float32 rounding alone gives about 1e-6 to 1e-5 on small models (matrix products summed in
    another order); an edit that changed the function gives far more.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    keep = attention_mask.bool()
    outs = [
        _final_outputs(m, input_ids.to(_device(m)), attention_mask.to(_device(m)))
        for m in (model_a, model_b)
    ]
    worst = 0.0
    for name in ("hidden", "logits"):
        a, b = outs[0].get(name), outs[1].get(name)
        if a is None or b is None:
            continue
        diff = (a.float().cpu() - b.float().cpu()).abs()[keep.cpu()]
        if diff.numel():
            worst = max(worst, float(diff.max()))
    return worst


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _final_outputs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    was_training = model.training
    model.eval()  # dropout would make two runs of one model differ
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    finally:
        model.train(was_training)
    found = {"hidden": out.hidden_states[-1]}
    logits = getattr(out, "logits", None)
    if logits is not None:
        found["logits"] = logits
    return found
