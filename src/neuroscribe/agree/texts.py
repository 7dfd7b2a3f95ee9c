"""Agreement between explainers in words: semantic similarity of their explanation texts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np

from neuroscribe.records import Agreement

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts -> unit-length embeddings, one row per text (``neuroscribe.embed.embed_texts``)."""


def agree_explanation_texts(
    unit_key: str, texts: Mapping[str, str | None], embed: Embedder | None = None
) -> list[Agreement]:
    """``explainer_text_similarity`` for each pair of explainers of one unit.

    ``texts`` maps each explainer to its (selected) explanation text of the unit. The value is the
    cosine similarity of the two texts' sentence embeddings, in [-1, 1] (identical texts: 1);
    ``n`` is 2, the texts it rests on. A missing or blank text gives None with a reason.
    ``embed`` defaults to the offline MiniLM model (``neuroscribe.embed.embed_texts``), loaded
    only when there is a pair to compare.
    """
    names = sorted(texts)
    if len(names) < 2:
        return []
    usable = [n for n in names if (texts[n] or "").strip()]
    vectors: dict[str, np.ndarray] = {}
    if len(usable) >= 2:
        if embed is None:
            from neuroscribe.embed import embed_texts

            embed = embed_texts
        matrix = np.asarray(embed([texts[n] or "" for n in usable]), dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        vectors = dict(zip(usable, matrix / np.where(norms > 0, norms, 1.0), strict=True))
    rows = []
    for a, b in combinations(names, 2):
        missing = [n for n in (a, b) if n not in usable]
        value = None if missing else float(np.clip(np.dot(vectors[a], vectors[b]), -1.0, 1.0))
        rows.append(
            Agreement(
                unit_key=unit_key,
                kind="explainer_text_similarity",
                annotators=(a, b),
                value=value,
                reason=f"no explanation text from {', '.join(missing)}" if missing else None,
                n=2 - len(missing),
            )
        )
    return rows
