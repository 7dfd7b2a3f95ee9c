"""Sparse autoencoders in the SAELens layout, whose features become the units of a collection.

An SAE is a folder with ``cfg.json`` and ``sae_weights.safetensors`` (``W_enc`` [d_in, d_sae],
``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in], ``b_dec`` [d_in], and ``threshold`` [d_sae] for
JumpReLU). ``cfg.json`` names the activation it reads, as a TransformerLens hook
(``hook_name``, or ``hook_point`` in older SAELens) or as a neuroscribe ``site``, and its
encoder (``architecture``: ``standard`` (ReLU), ``jumprelu`` or ``topk`` with ``k``). With
``apply_b_dec_to_input`` (default true, as in SAELens) the decoder bias is subtracted from the
input before encoding.

The SAE's id is ``<folder name>@<hash of cfg.json and the weights file>``: it is part of every
feature's ``UnitId``, so an explanation can never be attached to another dictionary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from neuroscribe.collect.errors import CollectError, few
from neuroscribe.collect.sites import SiteName, parse_site
from neuroscribe.ids import content_hash, file_hash
from neuroscribe.registry import SAE_ACTIVATIONS

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
Architecture = Literal["standard", "jumprelu", "topk"]

# TransformerLens hook (after "blocks.N.") -> canonical site kind, and the layer offset:
# hook_resid_pre of block N is the residual stream leaving block N-1.
HOOKS: dict[str, tuple[str, int]] = {
    "hook_resid_post": ("resid", 0),
    "hook_resid_pre": ("resid", -1),
    "hook_mlp_out": ("mlp_out", 0),
    "mlp.hook_post": ("mlp", 0),
}
_HOOK_PATTERN = re.compile(r"^blocks\.(\d+)\.(.+)$")


def site_of_hook(hook: str) -> SiteName:
    """The canonical site of a TransformerLens hook name; CollectError if it has none."""
    m = _HOOK_PATTERN.match(hook.strip())
    if not m or m.group(2) not in HOOKS:
        known = ", ".join(f"blocks.N.{h}" for h in HOOKS)
        raise CollectError(f"SAE hook '{hook}' has no canonical site here; supported: {known}")
    kind, offset = HOOKS[m.group(2)]
    layer = int(m.group(1)) + offset
    if layer < 0:
        raise CollectError(
            f"SAE hook '{hook}' reads the embeddings, which are not a supported site"
        )
    return SiteName(layer, kind)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SAE:
    """A loaded sparse autoencoder (float32 weights on the CPU)."""

    sae_id: str
    site: SiteName
    architecture: Architecture
    d_in: int
    d_sae: int
    W_enc: torch.Tensor  # noqa: N815 (SAELens names)
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor | None
    k: int | None
    apply_b_dec_to_input: bool

    def encode(self, x: torch.Tensor, features: list[int] | None = None) -> torch.Tensor:
        """Feature activations ``[..., features]`` of the input ``x[..., d_in]`` (float32).

        ReLU and JumpReLU compute only the chosen features; top-k needs every pre-activation
        to know which k win.
        """
        x = x.float()
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        activation = SAE_ACTIVATIONS.get_as(self.architecture, Activation)
        if activation.needs_all_features:
            acts = activation.apply(self, x @ self.W_enc + self.b_enc, None)
            return acts if features is None else acts[..., features]
        w, b = self.W_enc, self.b_enc
        if features is not None:
            w, b = w[:, features], b[features]
        return activation.apply(self, x @ w + b, features)


@dataclass(frozen=True)
class Activation:
    """An SAE encoder's activation function (an entry of ``registry.SAE_ACTIVATIONS``)."""

    apply: Callable[[SAE, torch.Tensor, list[int] | None], torch.Tensor]
    """``(sae, pre-activations of the chosen features, those features or None for all)``."""
    needs_all_features: bool = False
    """It needs every pre-activation (top-k: which k win), not only the chosen features'."""


def _relu(sae: SAE, pre: torch.Tensor, features: list[int] | None) -> torch.Tensor:
    return pre.relu()


def _jumprelu(sae: SAE, pre: torch.Tensor, features: list[int] | None) -> torch.Tensor:
    t = sae.threshold
    assert t is not None
    return pre.relu() * (pre > (t if features is None else t[features]))


def _topk(sae: SAE, pre: torch.Tensor, features: list[int] | None) -> torch.Tensor:
    assert sae.k is not None
    top = pre.topk(sae.k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())


relu_activation = Activation(_relu)
jumprelu_activation = Activation(_jumprelu)
topk_activation = Activation(_topk, needs_all_features=True)


def load_sae(path: str | Path) -> SAE:
    """Read an SAE folder (see the module docstring); CollectError naming any problem."""
    folder = Path(path).expanduser()
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    for f in (cfg_path, weights_path):
        if not f.is_file():
            raise CollectError(f"SAE folder '{path}' has no {f.name} (SAELens layout expected)")
    try:
        cfg: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CollectError(f"SAE config '{cfg_path}' is not valid JSON: {e}") from e
    site = _site(cfg, cfg_path)
    architecture = _architecture(cfg, cfg_path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as e:
        raise CollectError(f"SAE weights '{weights_path}' cannot be read: {e}") from e
    missing = [n for n in ("W_enc", "b_enc", "b_dec") if n not in weights]
    if architecture == "jumprelu" and "threshold" not in weights:
        missing.append("threshold")
    if missing:
        raise CollectError(f"SAE weights '{weights_path}' lack {', '.join(missing)}")
    w_enc = weights["W_enc"].float()
    if w_enc.ndim != 2:
        raise CollectError(f"SAE W_enc must be [d_in, d_sae]; got shape {tuple(w_enc.shape)}")
    d_in, d_sae = int(cfg.get("d_in", w_enc.shape[0])), int(cfg.get("d_sae", w_enc.shape[1]))
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if "W_dec" in weights:
        shapes["W_dec"] = (d_sae, d_in)
    if architecture == "jumprelu":
        shapes["threshold"] = (d_sae,)
    for name, shape in shapes.items():
        if tuple(weights[name].shape) != shape:
            raise CollectError(
                f"SAE '{path}': {name} has shape {tuple(weights[name].shape)}, expected {shape} "
                f"(cfg.json: d_in={d_in}, d_sae={d_sae})"
            )
    k = None
    if architecture == "topk":
        k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
        if not isinstance(k, int) or not 0 < k <= d_sae:
            raise CollectError(f"SAE config '{cfg_path}': topk needs an integer k in 1..{d_sae}")
    digest = content_hash(file_hash(str(cfg_path), 64), file_hash(str(weights_path), 64))
    return SAE(
        sae_id=f"{folder.resolve().name}@{digest}",
        site=site,
        architecture=architecture,
        d_in=d_in,
        d_sae=d_sae,
        W_enc=w_enc,
        b_enc=weights["b_enc"].float(),
        b_dec=weights["b_dec"].float(),
        threshold=weights["threshold"].float() if architecture == "jumprelu" else None,
        k=k,
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
    )


def _site(cfg: dict[str, Any], cfg_path: Path) -> SiteName:
    if isinstance(cfg.get("site"), str):
        return parse_site(cfg["site"])
    hook = cfg.get("hook_name", cfg.get("hook_point"))
    if not isinstance(hook, str):
        raise CollectError(
            f"SAE config '{cfg_path}' names no activation: give 'hook_name' (TransformerLens, "
            "e.g. blocks.6.hook_resid_post) or 'site' (e.g. layers.6.resid)"
        )
    return site_of_hook(hook)


def _architecture(cfg: dict[str, Any], cfg_path: Path) -> Architecture:
    arch = cfg.get("architecture", "standard")
    if cfg.get("activation_fn_str") == "topk" or cfg.get("activation_fn") == "topk":
        arch = "topk"  # older SAELens: a standard SAE with a top-k activation function
    if arch not in SAE_ACTIVATIONS:
        raise CollectError(
            f"SAE config '{cfg_path}': architecture '{arch}' is not supported "
            f"({', '.join(SAE_ACTIVATIONS.names())})"
        )
    norm = cfg.get("normalize_activations")
    if norm not in (None, "none"):
        raise CollectError(
            f"SAE config '{cfg_path}': normalize_activations='{norm}' is not supported"
        )
    return arch  # type: ignore[no-any-return]


def check_sae_fits(sae: SAE, site_width: int, features: list[int]) -> None:
    """CollectError when the SAE's input width is not the site's, or a feature is out of range."""
    if sae.d_in != site_width:
        raise CollectError(
            f"SAE {sae.sae_id} reads {sae.d_in}-wide activations but site '{sae.site}' of this "
            f"model is {site_width} wide"
        )
    bad = [f for f in features if f >= sae.d_sae]
    if bad:
        raise CollectError(
            f"unit indices {few(bad)} are out of range for SAE {sae.sae_id} "
            f"(features 0..{sae.d_sae - 1})"
        )


def check_sae(path: str | Path) -> SiteName:
    """Cheap checks of an SAE folder without reading its weights; returns the site it reads."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CollectError(f"SAE folder '{path}' does not exist")
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise CollectError(f"SAE folder '{path}' has no {name} (SAELens layout expected)")
    try:
        cfg = json.loads((folder / CFG_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CollectError(f"SAE config '{folder / CFG_FILE}' is not valid JSON: {e}") from e
    _architecture(cfg, folder / CFG_FILE)
    return _site(cfg, folder / CFG_FILE)
