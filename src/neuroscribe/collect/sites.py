"""Canonical activation sites and the modules that carry them in each architecture.

Sites are named ``layers.N.mlp`` (MLP neuron activations: the hidden activation after the
nonlinearity, i.e. the input of the MLP's output projection), ``layers.N.mlp_out`` (the MLP's
output, before it is added to the residual stream; what SAEs on ``hook_mlp_out`` read) and
``layers.N.resid`` (the residual stream leaving block N). A site resolves to one module and a hook
kind: a forward pre-hook on the down projection reads its input; a forward hook on a block, on the
down projection, or on BERT's ``intermediate`` reads its output.

``collect.site`` may name several sites, collected in one forward pass: a list, a comma-separated
string, or ``*`` for the layer (``layers.*.mlp``: every layer's MLP neurons).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

from neuroscribe.collect.errors import CollectError, few

SITE_PATTERN = re.compile(r"^layers\.(\d+)\.(mlp|mlp_out|resid)$")
SPEC_PATTERN = re.compile(r"^layers\.(\d+|\*)\.(mlp|mlp_out|resid)$")
KIND_ORDER = {"mlp": 0, "mlp_out": 1, "resid": 2}
"""Order of the sites inside one block during the forward pass."""

# model_type -> (block list inside the base model, MLP module inside a block, hook kind).
# "pre": the module's input is the activation; "out": the module's output is.
ARCHITECTURES: dict[str, tuple[str, str, Literal["pre", "out"]]] = {
    "gpt2": ("h", "mlp.c_proj", "pre"),
    "gpt_neox": ("layers", "mlp.dense_4h_to_h", "pre"),
    "bert": ("encoder.layer", "intermediate", "out"),
    "roberta": ("encoder.layer", "intermediate", "out"),
    "xlm-roberta": ("encoder.layer", "intermediate", "out"),
    "electra": ("encoder.layer", "intermediate", "out"),
}
# Llama-style gated MLPs share one layout (down_proj's input is act(gate) * up).
for _name in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2", "phi3"):
    ARCHITECTURES[_name] = ("layers", "mlp.down_proj", "pre")


@dataclass(frozen=True)
class SiteName:
    """A parsed canonical site."""

    layer: int
    kind: Literal["mlp", "mlp_out", "resid"]

    def __str__(self) -> str:
        return f"layers.{self.layer}.{self.kind}"


@dataclass(frozen=True)
class ResolvedSite:
    """Where a site's activations are read: the module, the hook kind and the width."""

    name: SiteName
    module: torch.nn.Module
    hook: Literal["pre", "out"]
    width: int


def parse_site(site: str) -> SiteName:
    """Parse ``layers.N.mlp`` / ``layers.N.resid``; CollectError on anything else."""
    m = SITE_PATTERN.match(site.strip())
    if not m:
        raise CollectError(
            f"site '{site}' is not a canonical site name; expected 'layers.N.mlp' (MLP neurons) "
            "'layers.N.mlp_out' (MLP output) or 'layers.N.resid' (residual stream after block N)"
        )
    return SiteName(int(m.group(1)), m.group(2))  # type: ignore[arg-type]


def spec_items(spec: str | list[str]) -> list[str]:
    """The site patterns of ``collect.site``: a list, or one string with commas between sites."""
    items = spec if isinstance(spec, list) else spec.split(",")
    items = [i.strip() for i in items if i.strip()]
    if not items:
        raise CollectError("collect.site names no site")
    for item in items:
        if not SPEC_PATTERN.match(item):
            parse_site(item)  # raises with the message about canonical names
    return items


def expand_sites(spec: str | list[str], n_layers: int | None = None) -> list[SiteName]:
    """Parse a site spec; ``*`` expands to every layer (needs ``n_layers``). Ordered by depth."""
    names: list[SiteName] = []
    for item in spec_items(spec):
        m = SPEC_PATTERN.match(item)
        assert m is not None
        kind = m.group(2)
        if m.group(1) == "*":
            if n_layers is None:
                continue  # syntax-only check
            names.extend(SiteName(i, kind) for i in range(n_layers))  # type: ignore[arg-type]
        else:
            names.append(SiteName(int(m.group(1)), kind))  # type: ignore[arg-type]
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:
        raise CollectError(f"collect.site lists a site more than once: {', '.join(repeated)}")
    return sorted(names, key=lambda n: (n.layer, KIND_ORDER[n.kind]))


def _layout(model: Any) -> tuple[torch.nn.ModuleList, str, Literal["pre", "out"]]:
    model_type = getattr(model.config, "model_type", "?")
    base = model.base_model
    if model_type in ARCHITECTURES:
        blocks_path, mlp_path, hook = ARCHITECTURES[model_type]
        return base.get_submodule(blocks_path), mlp_path, hook
    # Unknown model type: try the known layouts and keep the first that fits.
    for blocks_path, mlp_path, hook in dict.fromkeys(ARCHITECTURES.values()):
        try:
            blocks = base.get_submodule(blocks_path)
            blocks[0].get_submodule(mlp_path)
        except (AttributeError, IndexError, TypeError):
            continue
        return blocks, mlp_path, hook
    raise CollectError(
        f"architecture '{model_type}' is not supported: no known layout of blocks and MLP modules "
        f"(known: {', '.join(sorted(ARCHITECTURES))})"
    )


def _input_width(module: torch.nn.Module) -> int:
    """Width of the activation read at a module: its input width, or BERT intermediate's output."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    nx = getattr(module, "nx", None)  # transformers' Conv1D (GPT-2): weight is [in, out]
    if isinstance(nx, int):
        return nx
    dense = getattr(module, "dense", None)  # BertIntermediate: dense then activation
    if isinstance(dense, torch.nn.Linear):
        return dense.out_features
    raise CollectError(f"cannot tell the width of module {type(module).__name__}")


def site_widths(model: Any) -> tuple[int, int, int]:
    """(number of layers, MLP width, residual width) of a loaded model."""
    blocks, mlp_path, _ = _layout(model)
    return len(blocks), _input_width(blocks[0].get_submodule(mlp_path)), model.config.hidden_size


def valid_sites_message(model: Any) -> str:
    n_layers, mlp_width, resid_width = site_widths(model)
    last = n_layers - 1
    return (
        f"valid sites: layers.0.mlp … layers.{last}.mlp, layers.0.resid … layers.{last}.resid; "
        f"units 0..{mlp_width - 1} for mlp, 0..{resid_width - 1} for resid"
        f" (layers.N.mlp_out: as resid)"
    )


def resolve_sites(model: Any, spec: str | list[str], units: list[int]) -> list[ResolvedSite]:
    """Every site of a spec (see the module docstring), each checked as ``resolve_site`` does."""
    blocks, _, _ = _layout(model)
    return [_resolve(model, name, units) for name in expand_sites(spec, len(blocks))]


def resolve_site(model: Any, site: str | list[str], units: list[int]) -> ResolvedSite:
    """Find the module of ``site`` and check ``units`` fit its width, before any forward pass.

    Given a spec naming several sites, checks all of them and returns the first.
    """
    if isinstance(site, str) and SITE_PATTERN.match(site.strip()):
        return _resolve(model, parse_site(site), units)
    return resolve_sites(model, site, units)[0]


def _resolve(model: Any, name: SiteName, units: list[int]) -> ResolvedSite:
    site = str(name)
    blocks, mlp_path, hook = _layout(model)
    if name.layer >= len(blocks):
        raise CollectError(
            f"site '{site}' is out of range: the model has {len(blocks)} layers; "
            f"{valid_sites_message(model)}"
        )
    block = blocks[name.layer]
    if name.kind == "mlp":
        module = block.get_submodule(mlp_path)
        resolved = ResolvedSite(name, module, hook, _input_width(module))
    elif name.kind == "mlp_out":
        # The down projection's output; BERT's MLP output is the dense layer inside BertOutput
        # (before its residual add and LayerNorm).
        path = mlp_path if hook == "pre" else "output.dense"
        resolved = ResolvedSite(
            name, block.get_submodule(path), "out", int(model.config.hidden_size)
        )
    else:
        resolved = ResolvedSite(name, block, "out", int(model.config.hidden_size))
    bad = [u for u in units if u >= resolved.width]
    if bad:
        raise CollectError(
            f"unit indices {few(bad)} are out of range for site '{site}' (width "
            f"{resolved.width}); "
            f"{valid_sites_message(model)}"
        )
    return resolved


class StopForward(Exception):
    """Raised by the capture hook: nothing after the site is needed, so the forward pass ends."""


@contextmanager
def capture(site: ResolvedSite, units: list[int]) -> Iterator[list[torch.Tensor]]:
    """Hook ``site``; each forward pass appends a float32 [batch, pos, units] tensor and stops.

    The caller must catch ``StopForward`` around the model call.
    """
    with capture_many([site], [units]) as captured:
        yield captured


@contextmanager
def capture_many(
    sites: list[ResolvedSite],
    units: list[list[int] | None],
    store: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[list[torch.Tensor]]:
    """Hook every site; a forward pass appends each site's float32 [batch, pos, units] tensor
    (all of the site's width where ``units`` is None), in the order of ``sites``, and raises
    ``StopForward`` once the last one is in. The caller must catch ``StopForward``.

    ``store(i, x)``, when given, receives site i's [batch, pos, units] tensor as the hook sees
    it and returns what is appended instead: e.g. a copy into the caller's buffer, made while
    the site's output is still in the CPU's cache, which lets the model free its own tensor at
    once.
    """
    captured: list[torch.Tensor] = []
    got: dict[int, torch.Tensor] = {}
    handles = []

    def keeper(i: int, site: ResolvedSite, chosen: list[int] | None) -> Any:
        full = chosen is None or chosen == list(range(site.width))
        index = None if full else torch.tensor(chosen, dtype=torch.long)

        def keep(x: Any) -> None:
            x = x[0] if isinstance(x, tuple) else x
            if index is not None:
                x = x.index_select(-1, index.to(x.device))
            got[i] = store(i, x) if store is not None else x.float().cpu()
            if len(got) == len(sites):
                captured.extend(got[j] for j in range(len(sites)))
                got.clear()
                raise StopForward

        return keep

    for i, (site, chosen) in enumerate(zip(sites, units, strict=True)):
        keep = keeper(i, site, chosen)
        if site.hook == "pre":
            h = site.module.register_forward_pre_hook(lambda _m, args, k=keep: k(args[0]))
        else:
            h = site.module.register_forward_hook(lambda _m, _args, out, k=keep: k(out))
        handles.append(h)
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()
