"""The weights of one layer's MLP neurons, seen the same way in every supported architecture.

A neuron of ``layers.N.mlp`` is one input of the MLP's output projection (see
``neuroscribe.collect.sites``). Each neuron owns

- a *fire* row: the input-projection row (and bias) inside the nonlinearity: ``c_fc`` (GPT-2),
  ``dense_h_to_4h`` (NeoX), ``intermediate.dense`` (BERT) or ``gate_proj`` (gated MLPs);
- for gated MLPs (Llama, Gemma, SmolLM2: ``act(gate x) * (up x)``) also a *mult* row, ``up_proj``;
- an *out* column of the output projection.

``neuron_rows`` returns every one of these as a ``[neurons, hidden]`` view, whatever the module's
storage (``nn.Linear`` keeps ``[out, in]``, GPT-2's ``Conv1D`` keeps ``[in, out]``), so that
surgery code indexes neurons on axis 0 and never branches on the architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from neuroscribe.collect.sites import _layout

# Down-projection path (as ``collect.sites.ARCHITECTURES`` names it) -> where the other parts sit
# inside the block: (module whose input is the MLP input, fire projection, mult projection or "",
# output projection, activation function).
_PARTS: dict[str, tuple[str, str, str, str, str]] = {
    "mlp.c_proj": ("mlp", "mlp.c_fc", "", "mlp.c_proj", "mlp.act"),
    "mlp.dense_4h_to_h": ("mlp", "mlp.dense_h_to_4h", "", "mlp.dense_4h_to_h", "mlp.act"),
    "mlp.down_proj": ("mlp", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "mlp.act_fn"),
    "intermediate": (
        "intermediate",
        "intermediate.dense",
        "",
        "output.dense",
        "intermediate.intermediate_act_fn",
    ),
}

# Config fields that hold the MLP width, in the order they are tried (GPT-2's ``n_inner`` may be
# None, meaning 4 x hidden).
_WIDTH_FIELDS = ("intermediate_size", "n_inner")


@dataclass(frozen=True)
class MlpParts:
    """One block's MLP: its input module, projections and activation function."""

    input_module: nn.Module  # its forward input is what the MLP sees (after the pre-MLP norm)
    fire: nn.Module
    mult: nn.Module | None
    out: nn.Module
    act: Callable[[torch.Tensor], torch.Tensor]

    @property
    def width(self) -> int:
        return int(neuron_rows(self.out, "in").shape[0])

    def projections(self) -> list[tuple[nn.Module, str]]:
        """(module, side) for every projection; side "out" feeds neurons, "in" reads them."""
        feeds = [self.fire] + ([self.mult] if self.mult is not None else [])
        return [(m, "out") for m in feeds] + [(self.out, "in")]


def n_layers(model: Any) -> int:
    blocks, _, _ = _layout(model)
    return len(blocks)


def mlp_parts(model: Any, layer: int) -> MlpParts:
    """The MLP of block ``layer``; ValueError for a layer out of range or an unknown layout."""
    blocks, mlp_path, _ = _layout(model)
    if not 0 <= layer < len(blocks):
        raise ValueError(f"layer {layer} is out of range: the model has {len(blocks)} layers")
    if mlp_path not in _PARTS:
        raise ValueError(f"no surgery layout for MLP module '{mlp_path}'")
    block = blocks[layer]
    input_path, fire, mult, out, act = _PARTS[mlp_path]
    return MlpParts(
        input_module=block.get_submodule(input_path),
        fire=block.get_submodule(fire),
        mult=block.get_submodule(mult) if mult else None,
        out=block.get_submodule(out),
        act=block.get_submodule(act),
    )


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' Conv1D (GPT-2) stores weight as [in, out]; recognised by its nx/nf fields.
    return hasattr(module, "nx") and hasattr(module, "nf")


def neuron_rows(module: nn.Module, side: str) -> torch.Tensor:
    """The weight as a ``[neurons, hidden]`` view (writes go through to the module).

    ``side="out"``: the module's outputs are the neurons (fire/mult projections);
    ``side="in"``: its inputs are (the output projection).
    """
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    neurons_on_rows = (side == "out") != _is_conv1d(module)
    return weight if neurons_on_rows else weight.T


def ensure_bias(module: nn.Module) -> torch.Tensor:
    """The module's bias, adding a zero one if it has none (same function: adds 0)."""
    bias = getattr(module, "bias", None)
    if bias is None:
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        n_out = weight.shape[1] if _is_conv1d(module) else weight.shape[0]
        bias = nn.Parameter(torch.zeros(n_out, dtype=weight.dtype, device=weight.device))
        module.bias = bias
    return bias


def add_mlp_biases(model: Any) -> bool:
    """Give every MLP projection of every layer a (zero) bias, where the config can say so.

    Bias-free gated MLPs (Llama, SmolLM2) cannot shift a neuron's threshold; planting needs a
    bias. Llama's config has ``mlp_bias``: setting it and adding zero biases everywhere keeps the
    function and lets the model save and load. Returns False when the config has no such field
    (Gemma): then biases are added only where planted, and the copy lives in memory only.
    """
    if not hasattr(model.config, "mlp_bias"):
        return False
    model.config.mlp_bias = True
    for layer in range(n_layers(model)):
        for module, _ in mlp_parts(model, layer).projections():
            ensure_bias(module)
    return True


def widen_mlps(model: Any, extra: int) -> int:
    """Append ``extra`` zero neurons to every layer's MLP, in place; return the old width.

    A zero neuron has zero input rows, bias and output column, so it adds exactly 0 to the
    output. Every layer grows (not only the one being edited) because the config holds one MLP
    width for all of them, and a saved model must load again.
    """
    old = mlp_parts(model, 0).width
    for layer in range(n_layers(model)):
        for module, side in mlp_parts(model, layer).projections():
            _widen(module, side, extra)
    config = model.config
    field = next((f for f in _WIDTH_FIELDS if getattr(config, f, None) is not None), None)
    field = field or next((f for f in _WIDTH_FIELDS if hasattr(config, f)), None)  # n_inner=None
    if field is None:
        raise ValueError("the config names no MLP width (intermediate_size or n_inner)")
    setattr(config, field, old + extra)
    return old


def _widen(module: nn.Module, side: str, extra: int) -> None:
    rows = neuron_rows(module, side).detach()
    grown = torch.cat([rows, rows.new_zeros(extra, rows.shape[1])])
    conv = _is_conv1d(module)
    weight = grown if (side == "out") != conv else grown.T
    module.weight = nn.Parameter(weight.contiguous())
    bias = getattr(module, "bias", None)
    if side == "out" and bias is not None:
        module.bias = nn.Parameter(torch.cat([bias.detach(), bias.new_zeros(extra)]))
    # Keep the module's own size fields in step, since forward() reads some of them (Conv1D.nf).
    n = rows.shape[0] + extra
    if conv:
        setattr(module, "nf" if side == "out" else "nx", n)
    else:
        setattr(module, "out_features" if side == "out" else "in_features", n)
