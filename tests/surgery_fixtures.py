"""Helpers for the surgery and compare tests: tiny in-memory models, token windows, and MLP
activations read by a plain hook (written independently of ``neuroscribe.surgery``)."""

from __future__ import annotations

from typing import Any

import torch
from collect_fixtures import MLP_MODULE, tiny_config

# A small vocabulary, so every token (and every trigger) occurs many times in a sample.
VOCAB = torch.arange(1000, 1060)


def tiny_model(arch: str, seed: int = 0) -> Any:
    import transformers as tf

    torch.manual_seed(seed)
    cls = tf.AutoModel if arch == "bert" else tf.AutoModelForCausalLM
    return cls.from_config(tiny_config(arch)).eval()


def windows(seed: int, n: int = 64, tokens: int = 24) -> torch.Tensor:
    """[n, tokens] token ids drawn uniformly from ``VOCAB``."""
    g = torch.Generator().manual_seed(seed)
    return VOCAB[torch.randint(0, len(VOCAB), (n, tokens), generator=g)]


@torch.no_grad()
def mlp_activations(model: Any, arch: str, layer: int, input_ids: torch.Tensor) -> torch.Tensor:
    """[windows * tokens, width] activations of ``layers.{layer}.mlp`` read by a hook."""
    path, kind = MLP_MODULE[arch]
    module = model.get_submodule(path.format(i=layer))
    got: list[torch.Tensor] = []
    if kind == "pre":
        handle = module.register_forward_pre_hook(lambda _m, args: got.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _a, out: got.append(out))
    try:
        model(input_ids=input_ids)
    finally:
        handle.remove()
    return got[0].reshape(-1, got[0].shape[-1]).float()
