"""Helpers for the compare tests: a tiny model saved with copies whose answer is known (its MLP
neurons of one layer permuted; K units planted), a corpus, a config comparing two of them, and an
SAE's copy with its latents permuted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from collect_fixtures import INTERMEDIATE, build_tiny_model, random_documents, write_txt

from neuroscribe.config import RunConfig

LAYER = 1
PLANTED = [5, 17, 33, 50]
TRIGGER_WORDS = [["cat"], ["rain"], ["music", "books"], ["bridges"]]


@dataclass(frozen=True)
class KnownAnswers:
    arch: str
    original: Path
    permuted: Path
    planted: Path
    corpus: Path
    perm: torch.Tensor
    """The permuted copy's neuron j is the original's neuron perm[j] (at ``LAYER``)."""


def _save(model: Any, tokenizer: Any, directory: Path) -> Path:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_known_answers(arch: str, root: Path) -> KnownAnswers:
    """The original, its permuted and planted copies (saved as local folders) and a corpus."""
    import transformers as tf

    from neuroscribe.collect.windows import tokenize
    from neuroscribe.surgery import mlp_input_sample, permute_mlp, plant_units

    docs = random_documents(120, seed=4)
    corpus = write_txt(root / "corpus.txt", docs)
    original = build_tiny_model(arch, root / "original", seed=1)
    tokenizer = tf.AutoTokenizer.from_pretrained(original)
    model = tf.AutoModelForCausalLM.from_pretrained(original).eval()
    perm = torch.randperm(INTERMEDIATE, generator=torch.Generator().manual_seed(3))
    permuted = _save(permute_mlp(model, LAYER, perm), tokenizer, root / "permuted")
    sample_ids = torch.tensor([tokenize(tokenizer, d)[:20] for d in docs[:64]])
    sample = mlp_input_sample(model, LAYER, sample_ids)
    triggers = [set(tokenizer.convert_tokens_to_ids(words)) for words in TRIGGER_WORDS]
    result = plant_units(model, LAYER, PLANTED, triggers, sample)
    assert result.saveable
    planted = _save(result.model, tokenizer, root / "planted")
    return KnownAnswers(arch, original, permuted, planted, corpus, perm)


def compare_cfg(models: list[Path | str], corpus: Path, **compare: Any) -> RunConfig:
    return RunConfig.model_validate(
        {
            "corpus": {"source": str(corpus), "max_documents": None},
            "collect": {"site": "layers.*.mlp", "window_tokens": 8, "max_windows": 150,
                        "batch_size": 16},
            "compare": {"models": [str(m) for m in models], **compare},
        }
    )


def permuted_sae(source: Path, target: Path, perm: torch.Tensor) -> Path:
    """The SAE at ``source`` with latent j of the copy = latent perm[j] of the original."""
    from safetensors.torch import load_file, save_file

    w = load_file(str(source / "sae_weights.safetensors"))
    w = {"W_enc": w["W_enc"][:, perm], "b_enc": w["b_enc"][perm], "W_dec": w["W_dec"][perm],
         "b_dec": w["b_dec"]}
    target.mkdir()
    save_file({k: v.contiguous() for k, v in w.items()}, str(target / "sae_weights.safetensors"))
    (target / "cfg.json").write_text((source / "cfg.json").read_text())
    return target
