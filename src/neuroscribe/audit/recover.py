"""Recovery: does a unit's selected explanation name what was planted?

- a word plant is recovered when the explanation names the word (a whole-word match, any case);
- a concept plant when it names any of the concept's words, or when its MiniLM cosine
  similarity to the concept's words (joined by commas) reaches the audit's threshold.

Each verdict carries its reason (``why``), stored with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from neuroscribe.audit.spec import AuditRecord, Plant
from neuroscribe.records import Explanation

Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> unit-length embeddings [len, dim] (``neuroscribe.embed.embed_texts``)."""


class Recovery(AuditRecord):
    recovered: bool
    why: str
    similarity: float | None = None
    """Cosine similarity to the concept's words (concept plants only)."""


def names_word(text: str, word: str) -> bool:
    """Whether ``text`` holds ``word`` as a whole word, in any case."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", text, re.I) is not None


def concept_text(plant: Plant) -> str:
    return ", ".join(plant.words)


def recover(plant: Plant, text: str | None, similarity: float | None, threshold: float) -> Recovery:
    """The verdict for one explanation ``text`` (None: the explainer gave none)."""
    if text is None:
        return Recovery(recovered=False, why="no usable explanation")
    named = [w for w in plant.words if names_word(text, w)]
    if plant.kind == "word":
        word = plant.words[0]
        return Recovery(
            recovered=bool(named),
            why=f"names '{word}'" if named else f"does not name '{word}'",
        )
    if named:
        return Recovery(recovered=True, why=f"names {', '.join(named)}", similarity=similarity)
    if similarity is not None and similarity >= threshold:
        return Recovery(
            recovered=True,
            why=f"similarity {similarity:.2f} >= {threshold:.2f} to {concept_text(plant)}",
            similarity=similarity,
        )
    shown = "n/a" if similarity is None else f"{similarity:.2f}"
    return Recovery(
        recovered=False,
        why=f"names none of {concept_text(plant)}; similarity {shown} < {threshold:.2f}",
        similarity=similarity,
    )


def recover_all(
    plants: dict[str, Plant],
    explanations: Sequence[Explanation],
    threshold: float,
    embed: Embed | None = None,
) -> dict[tuple[str, str], Recovery]:
    """(unit key, explainer) -> verdict for every selected explanation of a planted unit
    (``plants``: unit key -> plant). Similarities are computed only for concept plants, in one
    batch."""
    chosen = [e for e in explanations if e.selected and e.unit_key in plants]
    chosen.sort(key=lambda e: e.status == "ok")  # an ok explanation wins over a failed one
    texts = {(e.unit_key, e.explainer): (e.text if e.status == "ok" else None) for e in chosen}
    similarity: dict[tuple[str, str], float] = {}
    pairs = [
        (key, text, concept_text(plants[key[0]]))
        for key, text in texts.items()
        if text is not None and plants[key[0]].kind == "concept"
    ]
    if pairs and embed is not None:
        vectors = embed([t for _, t, _ in pairs] + [c for _, _, c in pairs])
        a, b = vectors[: len(pairs)], vectors[len(pairs) :]
        for (key, _, _), x, y in zip(pairs, a, b, strict=True):
            similarity[key] = float(np.dot(x, y))
    return {
        key: recover(plants[key[0]], text, similarity.get(key), threshold)
        for key, text in texts.items()
    }
