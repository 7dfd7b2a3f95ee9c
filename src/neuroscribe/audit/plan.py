"""The audit's plan, checked before anything is written: an MLP site of the subject, a number of
plants the layer can hold, a copy that can be saved, and triggers drawn from the corpus.

Every failure is one ``BadInput`` naming the problem: a site with no MLP (``layers.N.resid``,
an SAE), more plants than the layer has units, an empty trigger list, triggers the corpus does
not hold.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from neuroscribe.audit.spec import AuditPlan, AuditSpec, Plant
from neuroscribe.audit.triggers import (
    BUILTIN_CONCEPTS,
    draw_words,
    eligible_words,
    window_counts,
    word_tokens,
)
from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.sites import SITE_PATTERN, parse_site
from neuroscribe.collect.splits import n_top_needed
from neuroscribe.collect.windows import RawWindow, cut_windows
from neuroscribe.config import RunConfig
from neuroscribe.copies import editable_subject
from neuroscribe.errors import BadInput
from neuroscribe.surgery import mlp_parts


def corpus_windows(cfg: RunConfig, tokenizer: Any) -> list[RawWindow]:
    """The windows collection will read (same corpus, length and count), in order."""
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    return list(cut_windows(docs, tokenizer, cfg.collect.window_tokens, cfg.collect.max_windows))


def plan_audit(cfg: RunConfig, spec: AuditSpec) -> AuditPlan:
    """Check the site and size, draw the triggers; loads the subject (cached) and reads the
    corpus windows, writes nothing."""
    layer = _mlp_layer(cfg)
    loaded = editable_subject(cfg)
    try:
        parts = mlp_parts(loaded.model, layer)
    except ValueError as e:
        raise BadInput(f"cannot plant in {cfg.collect.site}: {e}") from e
    if getattr(parts.fire, "bias", None) is None and not hasattr(loaded.model.config, "mlp_bias"):
        raise BadInput(
            f"a planted copy of this {loaded.model.config.model_type} model cannot be saved (its "
            "config cannot declare the MLP biases planting adds); audit another architecture"
        )
    n_plants = len(spec.triggers) if spec.triggers is not None else spec.plants
    if n_plants > parts.width:
        raise BadInput(
            f"{n_plants} plants do not fit {cfg.collect.site}, which has {parts.width} units"
        )
    windows = [w.token_ids for w in corpus_windows(cfg, loaded.tokenizer)]
    words = word_tokens(loaded.tokenizer, {t for w in windows for t in w})
    min_windows = n_top_needed(cfg.collect)
    if spec.kind == "word":
        plants = _word_plants(spec, windows, words, min_windows)
    else:
        plants = _concept_plants(spec, windows, words, min_windows)
    return AuditPlan(
        spec=spec, site=cfg.collect.site if isinstance(cfg.collect.site, str) else "",
        layer=layer, width=parts.width, plants=tuple(plants),
    )


def _mlp_layer(cfg: RunConfig) -> int:
    site = cfg.collect.site
    if cfg.collect.sae:
        raise BadInput("an audit plants MLP neurons; it cannot audit an SAE (unset collect.sae)")
    if not isinstance(site, str) or not SITE_PATTERN.match(site.strip()):
        raise BadInput(f"an audit plants in one MLP site (layers.N.mlp), not '{site}'")
    name = parse_site(site)
    if name.kind != "mlp":
        raise BadInput(
            f"site '{site}' has no MLP neurons to plant; use layers.{name.layer}.mlp"
        )
    return name.layer


def _word_plants(
    spec: AuditSpec,
    windows: Sequence[Sequence[int]],
    words: Mapping[str, frozenset[int]],
    min_windows: int,
) -> list[Plant]:
    counts = window_counts(windows, words)
    if spec.triggers is None:
        chosen = draw_words(eligible_words(counts, len(windows), min_windows), spec.plants,
                            spec.seed)
    else:
        chosen = [t.strip().lower() for t in spec.triggers if t.strip()]
        if not chosen:
            raise BadInput("the trigger list is empty: name at least one word to plant")
        missing = [w for w in chosen if w not in words]
        if missing:
            raise BadInput(
                f"trigger words not found as whole-word tokens in the corpus windows: "
                f"{', '.join(missing)}"
            )
        if len(set(chosen)) != len(chosen):
            raise BadInput(f"trigger words are repeated: {', '.join(chosen)}")
    return [
        Plant(kind="word", name=w, words=(w,), token_ids=tuple(sorted(words[w])),
              n_windows=counts[w])
        for w in chosen
    ]


def _concept_plants(
    spec: AuditSpec,
    windows: Sequence[Sequence[int]],
    words: Mapping[str, frozenset[int]],
    min_windows: int,
) -> list[Plant]:
    concepts = BUILTIN_CONCEPTS if spec.concepts is None else spec.concepts
    if not concepts:
        raise BadInput("the concept list is empty: give at least one concept to plant")
    usable = []
    for name, members in sorted(concepts.items()):
        present = tuple(w for w in members if w in words)
        if len(present) < min(2, len(members)):
            continue
        ids = frozenset().union(*(words[w] for w in present))
        n = window_counts(windows, {name: ids})[name]
        if n >= min_windows:
            usable.append(Plant(kind="concept", name=name, words=present,
                                token_ids=tuple(sorted(ids)), n_windows=n))
    if not usable:
        raise BadInput(
            f"none of the concepts ({', '.join(sorted(concepts))}) has its words in at least "
            f"{min_windows} corpus windows; give concepts of this corpus's words"
        )
    return random.Random(spec.seed).sample(usable, min(spec.plants, len(usable)))
