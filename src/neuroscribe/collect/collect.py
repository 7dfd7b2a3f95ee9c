"""The collect stage: run the subject over a corpus and keep, per unit, what later stages need.

One pass over the corpus in batches. Each batch's activations at the site (selected units only,
float32) update the per-unit top windows, a shared random sample of windows, a random sample of
tokens (for quantiles) and running statistics, then are dropped: memory is bounded by units ×
kept examples, never by the corpus. An optional second corpus contributes a random sample of
windows for the out-of-distribution split. Finally each unit's windows are dealt into splits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from neuroscribe.collect.corpus import check_source, open_corpus
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.select import (
    RandomSample,
    RunningStats,
    TopWindows,
    quantiles,
    token_sample_capacity,
)
from neuroscribe.collect.sites import ResolvedSite, StopForward, capture, parse_site, resolve_site
from neuroscribe.collect.splits import Candidate, assign_unit, n_top_needed
from neuroscribe.collect.windows import (
    Frame,
    RawWindow,
    TokenDecoder,
    batched,
    check_window_size,
    cut_windows,
    special_frame,
)
from neuroscribe.config import RunConfig
from neuroscribe.models import ModelNotFoundError, load_model
from neuroscribe.records import Record, Subject, UnitExamples, UnitId, UnitStats, Window

Progress = Callable[[int, int], None]


class CollectResult(Record):
    """Everything collection yields: the subject, the windows used, and each unit's examples."""

    subject: Subject
    corpus_id: str
    """``stdlib:<python version>``, ``file:<path>@<content hash>`` or ``hf:<name>``."""
    windows: tuple[Window, ...]
    """Only the windows that at least one unit uses, main corpus first, in corpus order."""
    units: tuple[UnitExamples, ...]
    n_documents: int
    """Usable documents read from the main corpus."""
    n_windows: int
    """Windows of the main corpus run through the model."""
    skipped_documents: int
    """Documents of the main corpus skipped as non-UTF-8 or empty."""


def validate_inputs(cfg: RunConfig) -> None:
    """Cheap checks before any model is loaded: site syntax, unit indices, corpus readable."""
    parse_site(cfg.collect.site)
    units = cfg.unit_indices
    negative = [u for u in units if u < 0]
    if negative:
        raise CollectError(f"unit indices must be non-negative; got {negative}")
    repeated = sorted({u for u in units if units.count(u) > 1})
    if repeated:
        raise CollectError(f"unit indices are listed more than once: {repeated}")
    check_source(cfg.corpus.source, cfg.corpus.text_field)
    if cfg.corpus.ood_source:
        check_source(cfg.corpus.ood_source, cfg.corpus.text_field)


def collect(cfg: RunConfig, *, progress: Progress | None = None) -> CollectResult:
    """Collect top, random and out-of-distribution windows and statistics for the config's units.

    ``progress(done_windows, total_windows_estimate)`` is called after every batch; the estimate
    is ``max_windows`` per corpus until a corpus runs out.
    """
    validate_inputs(cfg)
    c = cfg.collect
    try:
        loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    except ModelNotFoundError as e:
        raise CollectError(str(e)) from e
    model, tokenizer = loaded.model, loaded.tokenizer
    units = cfg.unit_indices
    site = resolve_site(model, c.site, units)
    frame = special_frame(tokenizer)
    check_window_size(model, c.window_tokens, frame)
    subject = Subject(
        name=cfg.subject.model,
        weights_hash=loaded.weights_hash,
        architecture=model.config.model_type,
        n_layers=model.config.num_hidden_layers,
    )

    k = n_top_needed(c)
    k += max(2, k // 4)  # margin: repeated text is passed over when splits are dealt
    n_units = len(units)
    top = TopWindows(k, n_units, c.window_tokens)
    sample = RandomSample(3 * c.n_random + k, seed=c.seed)  # enough after removing top windows
    token_sample = RandomSample(token_sample_capacity(n_units), seed=c.seed + 1)
    stats = RunningStats(n_units, c.firing_threshold)
    store: dict[int, RawWindow] = {}  # the windows some unit still keeps, by corpus index

    corpus = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    extra = c.max_windows if cfg.corpus.ood_source else 0
    done = 0
    windows = cut_windows(corpus, tokenizer, c.window_tokens, c.max_windows)
    for batch, acts in _activations(model, site, units, frame, windows, c.batch_size):
        index = torch.tensor([w.index for w in batch])
        top.update(acts, index)
        sample.update(acts, index)
        flat = acts.reshape(-1, n_units)
        token_sample.update(flat, torch.arange(stats.n_tokens, stats.n_tokens + len(flat)))
        stats.update(acts)
        store.update((w.index, w) for w in batch)
        keep = set(top.index.unique().tolist()) | set(sample.index.tolist())
        store = {i: w for i, w in store.items() if i in keep}
        done += len(batch)
        if progress:
            progress(done, c.max_windows + extra)
    n_windows = done
    if n_windows == 0:
        raise CollectError(
            f"corpus '{cfg.corpus.source}' yielded no window of {c.window_tokens} tokens "
            f"({corpus.n_documents} documents read, {corpus.skipped} skipped as non-UTF-8 or "
            "empty); use a larger corpus or a smaller collect.window_tokens"
        )

    ood_sample, ood_store, ood_id = RandomSample(c.n_random + k, seed=c.seed + 2), {}, ""
    if cfg.corpus.ood_source:
        ood = open_corpus(cfg.corpus.ood_source, cfg.corpus.text_field, cfg.corpus.max_documents)
        ood_id = ood.corpus_id
        ood_windows = cut_windows(ood, tokenizer, c.window_tokens, c.max_windows)
        for batch, acts in _activations(model, site, units, frame, ood_windows, c.batch_size):
            ood_sample.update(acts, torch.tensor([w.index for w in batch]))
            ood_store.update((w.index, w) for w in batch)
            keep = set(ood_sample.index.tolist())
            ood_store = {i: w for i, w in ood_store.items() if i in keep}
            done += len(batch)
            if progress:
                progress(done, n_windows + extra)

    decoder = TokenDecoder(tokenizer)
    records: dict[tuple[int, int], Window] = {}

    def window(source: int, raw: RawWindow) -> Window:
        key = (source, raw.index)
        if key not in records:
            records[key] = decoder.window(ood_id if source else corpus.corpus_id, raw)
        return records[key]

    def candidate(source: int, raw: RawWindow, acts: torch.Tensor) -> Candidate:
        return Candidate(window(source, raw).window_id, raw.token_ids, tuple(acts.tolist()))

    qs = quantiles(token_sample.rows, list(c.quantiles)) if token_sample.rows is not None else None
    unit_records = []
    for u, index in enumerate(units):
        dead = bool(stats.max[u] <= c.firing_threshold)
        unit_stats = UnitStats(
            n_tokens=stats.n_tokens,
            max=float(stats.max[u]),
            mean=float(stats.mean[u]),
            firing_rate=float(stats.firing_rate[u]),
            quantiles=tuple(float(v) for v in qs[:, u]) if qs is not None else (),
            dead=dead,
        )
        placed: tuple = ()
        if not dead:
            placed = assign_unit(
                (
                    (rank, candidate(0, store[i], top.acts[u, rank]))
                    for rank, i in enumerate(top.index[u].tolist())
                ),
                (
                    candidate(0, store[i], sample.rows[r, :, u])
                    for r, i in enumerate(sample.index.tolist())
                ),
                (
                    candidate(1, ood_store[i], ood_sample.rows[r, :, u])
                    for r, i in enumerate(ood_sample.index.tolist())
                ),
                c,
            )
        unit_id = UnitId(subject_id=subject.subject_id, site=str(site.name), index=index)
        unit_records.append(UnitExamples(unit=unit_id, stats=unit_stats, windows=placed))

    used = {w.window_id for unit in unit_records for w in unit.windows}
    kept = [records[key] for key in sorted(records) if records[key].window_id in used]
    return CollectResult(
        subject=subject,
        corpus_id=corpus.corpus_id,
        windows=tuple(kept),
        units=tuple(unit_records),
        n_documents=corpus.n_documents,
        n_windows=n_windows,
        skipped_documents=corpus.skipped,
    )


def _activations(
    model: Any,
    site: ResolvedSite,
    units: list[int],
    frame: Frame,
    windows: Iterable[RawWindow],
    batch_size: int,
) -> Iterator[tuple[list[RawWindow], torch.Tensor]]:
    """Per batch: the windows and the selected units' activations, float32 [batch, pos, unit]."""
    base = model.base_model  # skip the LM head: the site is always inside the base model
    start = len(frame.prefix)
    for batch in batched(windows, batch_size):
        ids = frame.wrap(batch).to(model.device)
        # The hook raises StopForward once it has the site's activations: the layers after the
        # site are never run.
        with (
            torch.inference_mode(),
            capture(site, units) as captured,
            contextlib.suppress(StopForward),
        ):
            base(input_ids=ids, attention_mask=torch.ones_like(ids))
        if not captured:
            raise CollectError(f"the hook at site '{site.name}' did not fire")
        width = len(batch[0].token_ids)
        yield batch, captured[0][:, start : start + width, :]
