"""The subjects of a comparison, loaded and checked against each other before anything runs.

A comparison reads the same corpus windows through every subject, so the subjects must share a
tokenizer (the same vocabulary, and the same ids for the corpus's text) and every compared site
must exist in each. Each failure is one ``BadInput`` naming the subjects; nothing is recorded
before these checks pass. Loads are cached per process (``models.load_model``), so the pass that
follows reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroscribe.checks import check_annotators
from neuroscribe.collect.corpus import check_source, open_corpus
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.sites import ResolvedSite, expand_sites, resolve_sites, site_widths
from neuroscribe.collect.windows import (
    Frame,
    check_window_size,
    cut_windows,
    special_frame,
    tokenize,
)
from neuroscribe.config import RunConfig
from neuroscribe.errors import BadInput
from neuroscribe.models import LoadedModel, load_model, resolve_source
from neuroscribe.records import Subject

PROBE_DOCUMENTS = 8
"""Documents of the corpus tokenized by every subject to check that the ids agree."""


class CompareError(BadInput):
    """Subjects that cannot be compared (one subject, other tokenizers, a missing site)."""


@dataclass(frozen=True)
class LoadedSubject:
    """One subject ready for the pass: its record, model, framing and hooked sites."""

    subject: Subject
    model: Any
    tokenizer: Any
    frame: Frame
    sites: list[ResolvedSite]


def check_compare(cfg: RunConfig) -> None:
    """Every check of a comparison's input (see the module docstring), and, when the top of the
    diff is to be explained (``compare.explain``), of its explainers and simulators."""
    load_subjects(cfg)
    if cfg.compare.explain:
        check_annotators(cfg)


def load_subjects(cfg: RunConfig) -> list[LoadedSubject]:
    """Load and check the subjects of ``cfg.compare.models``; ``CompareError`` on bad input."""
    names = cfg.compare.models
    if len(names) < 2:
        got = f"only '{names[0]}'" if names else "none"
        raise CompareError(f"compare needs two or more subjects (--model A --model B); got {got}")
    expand_sites(cfg.collect.site)  # syntax, before any model is loaded
    check_source(cfg.corpus.source, cfg.corpus.text_field)
    for name in names:
        resolve_source(name, cfg.subject.gguf_file)
    loaded = [load_model(n, cfg.subject.gguf_file, cfg.subject.dtype) for n in names]
    check_same_tokenizer(names, loaded, cfg)
    subjects = [_subject(name, lm, cfg) for name, lm in zip(names, loaded, strict=True)]
    first = {str(site.name) for site in subjects[0].sites}
    for name, s in zip(names[1:], subjects[1:], strict=True):
        sites = {str(site.name) for site in s.sites}
        for has, lacks, missing in (
            (names[0], name, first - sites),
            (name, names[0], sites - first),
        ):
            if missing:
                raise CompareError(
                    f"site {', '.join(sorted(missing)[:5])} of '{has}' is missing in '{lacks}' "
                    "(the subjects have different numbers of layers); name sites both have"
                )
    return subjects


def check_same_tokenizer(names: list[str], loaded: list[LoadedModel], cfg: RunConfig) -> None:
    """The same vocabulary, and the same ids for the first documents of the corpus."""
    first_vocab = loaded[0].tokenizer.get_vocab()
    for name, lm in zip(names[1:], loaded[1:], strict=True):
        vocab = lm.tokenizer.get_vocab()
        if vocab != first_vocab:
            differ = sum(1 for t, i in vocab.items() if first_vocab.get(t) != i)
            raise CompareError(
                f"'{names[0]}' and '{name}' have different tokenizers ({len(first_vocab)} and "
                f"{len(vocab)} tokens, {differ} of the second's missing or with another id); "
                "compare runs the same token windows through every subject"
            )
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, PROBE_DOCUMENTS)
    for doc in docs:
        first = tokenize(loaded[0].tokenizer, doc.text)
        for name, lm in zip(names[1:], loaded[1:], strict=True):
            if tokenize(lm.tokenizer, doc.text) != first:
                raise CompareError(
                    f"'{names[0]}' and '{name}' tokenize document '{doc.doc_id}' of the corpus "
                    "differently (same vocabulary, other rules); compare needs subjects that "
                    "share a tokenizer"
                )
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    window = next(iter(cut_windows(docs, loaded[0].tokenizer, cfg.collect.window_tokens, 1)), None)
    if window is None:
        raise CollectError(
            f"corpus '{cfg.corpus.source}' yields no window of {cfg.collect.window_tokens} "
            f"tokens ({docs.n_documents} documents read, {docs.skipped} skipped as non-UTF-8 or "
            "empty); use a larger corpus or a smaller collect.window_tokens"
        )


def _subject(name: str, lm: LoadedModel, cfg: RunConfig) -> LoadedSubject:
    model = lm.model
    try:
        sites = resolve_sites(model, cfg.collect.site, [])
    except CollectError as e:
        raise CompareError(f"subject '{name}' lacks a compared site: {e}") from e
    frame = special_frame(lm.tokenizer)
    check_window_size(model, cfg.collect.window_tokens, frame)
    subject = Subject(
        name=name,
        weights_hash=lm.weights_hash,
        architecture=model.config.model_type,
        n_layers=_n_layers(model),
    )
    return LoadedSubject(subject, model, lm.tokenizer, frame, sites)


def _n_layers(model: Any) -> int:
    return site_widths(model)[0]
