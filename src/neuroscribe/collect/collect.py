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

from neuroscribe.collect.corpus import DocumentStream, check_source, open_corpus
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
from neuroscribe.records import (
    Record,
    Subject,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
    Window,
)

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
    model, tokenizer, units = loaded.model, loaded.tokenizer, cfg.unit_indices
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
    shape = (c.window_tokens, len(units))
    # The random sample must still fill three random splits after a unit's top windows are
    # taken out of it; the OOD sample one split.
    main = _Pass(
        RandomSample(3 * c.n_random + k, c.seed, shape), TopWindows(k, len(units), c.window_tokens)
    )
    ood = _Pass(RandomSample(c.n_random + k, c.seed + 2, shape))
    tokens = RandomSample(token_sample_capacity(len(units)), c.seed + 1, (len(units),))
    stats = RunningStats(len(units), c.firing_threshold)
    total = c.max_windows * (2 if cfg.corpus.ood_source else 1)

    def run(
        label: str, source: str, scan: _Pass, on_batch: Callable[[torch.Tensor], None]
    ) -> DocumentStream:
        nonlocal total
        docs = open_corpus(source, cfg.corpus.text_field, cfg.corpus.max_documents)
        windows = cut_windows(docs, tokenizer, c.window_tokens, c.max_windows)
        for batch, acts in _activations(model, site, units, frame, windows, c.batch_size):
            scan.update(batch, acts)
            on_batch(acts)
            if progress:
                progress(main.n_windows + ood.n_windows, total)
        total -= c.max_windows - scan.n_windows  # this corpus is done: no more estimating
        if scan.n_windows == 0:
            raise CollectError(
                f"{label} '{source}' yielded no window of {c.window_tokens} tokens "
                f"({docs.n_documents} documents read, {docs.skipped} skipped as non-UTF-8 or "
                "empty); use a larger corpus or a smaller collect.window_tokens"
            )
        return docs

    def on_main_batch(acts: torch.Tensor) -> None:
        flat = acts.reshape(-1, len(units))
        tokens.update(flat, torch.arange(stats.n_tokens, stats.n_tokens + len(flat)))
        stats.update(acts)

    corpus = run("corpus", cfg.corpus.source, main, on_main_batch)
    ood_id = ""
    if cfg.corpus.ood_source:
        ood_source = cfg.corpus.ood_source
        ood_id = run("out-of-distribution corpus", ood_source, ood, lambda _: None).corpus_id
    corpus_ids = (corpus.corpus_id, ood_id)
    decoder = TokenDecoder(tokenizer)
    records: dict[tuple[int, int], Window] = {}  # (0 main / 1 OOD, corpus index) -> window

    def candidate(source: int, raw: RawWindow, acts: torch.Tensor) -> Candidate:
        key = (source, raw.index)
        if key not in records:
            records[key] = decoder.window(corpus_ids[source], raw)
        return Candidate(records[key].window_id, raw.token_ids, tuple(acts.tolist()))

    qs = quantiles(tokens.rows, list(c.quantiles))
    unit_records = []
    for u, unit_index in enumerate(units):
        dead = bool(stats.max[u] <= c.firing_threshold)
        placed: tuple[UnitWindow, ...] = ()
        if not dead:
            top = main.top
            assert top is not None
            placed = assign_unit(
                (
                    (rank, candidate(0, main.store[i], top.acts[u, rank]))
                    for rank, i in enumerate(top.index[u].tolist())
                ),
                (candidate(0, main.store[i], row[:, u]) for i, row in main.sampled()),
                (candidate(1, ood.store[i], row[:, u]) for i, row in ood.sampled()),
                c,
            )
        unit_stats = UnitStats(
            n_tokens=stats.n_tokens,
            max=float(stats.max[u]),
            mean=float(stats.mean[u]),
            firing_rate=float(stats.firing_rate[u]),
            quantiles=tuple(float(v) for v in qs[:, u]),
            dead=dead,
        )
        unit_id = UnitId(subject_id=subject.subject_id, site=str(site.name), index=unit_index)
        unit_records.append(UnitExamples(unit=unit_id, stats=unit_stats, windows=placed))

    used = {w.window_id for unit in unit_records for w in unit.windows}
    return CollectResult(
        subject=subject,
        corpus_id=corpus.corpus_id,
        windows=tuple(records[key] for key in sorted(records) if records[key].window_id in used),
        units=tuple(unit_records),
        n_documents=corpus.n_documents,
        n_windows=main.n_windows,
        skipped_documents=corpus.skipped,
    )


class _Pass:
    """What a pass over one corpus keeps: a random sample of windows, optionally the top windows,
    and the tokens of just the windows still kept (pruned every batch, so memory stays bounded).
    """

    def __init__(self, sample: RandomSample, top: TopWindows | None = None) -> None:
        self.sample = sample
        self.top = top
        self.store: dict[int, RawWindow] = {}
        self.n_windows = 0

    def update(self, batch: list[RawWindow], acts: torch.Tensor) -> None:
        index = torch.tensor([w.index for w in batch])
        self.sample.update(acts, index)
        keep = set(self.sample.index.tolist())
        if self.top is not None:
            self.top.update(acts, index)
            keep |= set(self.top.index.unique().tolist())
        self.store.update((w.index, w) for w in batch)
        self.store = {i: w for i, w in self.store.items() if i in keep}
        self.n_windows += len(batch)

    def sampled(self) -> Iterator[tuple[int, torch.Tensor]]:
        """The random sample in random order: (corpus index, activations [pos, unit])."""
        return zip(self.sample.index.tolist(), self.sample.rows, strict=True)


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
