"""The collect stage: run the subject over a corpus and keep, per unit, what later stages need.

One pass over the corpus in batches. Each batch's activations at the sites (selected units of
every site side by side, float32; or the features of an SAE) update the per-unit top windows, a
shared random sample of windows, a random sample of tokens (for quantiles) and running
statistics, then are dropped: memory is bounded by units × kept examples, never by the corpus.
An optional second corpus contributes a random sample of windows for the out-of-distribution
split. Finally each unit's windows are dealt into splits.

The streaming state is checkpointed every ``checkpoint_every`` batches; ``resume=True`` continues
from the checkpoint (the corpus is re-read, and the windows already seen are skipped without a
forward pass), with a result identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuroscribe.collect.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from neuroscribe.collect.corpus import check_source, open_corpus
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.sae import SAE, check_sae, check_sae_fits, load_sae
from neuroscribe.collect.select import (
    RandomSample,
    RunningStats,
    TopWindows,
    quantiles,
    token_sample_capacity,
)
from neuroscribe.collect.sites import (
    ResolvedSite,
    StopForward,
    _layout,
    _resolve,
    capture_many,
    expand_sites,
    resolve_sites,
)
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
from neuroscribe.ids import content_hash
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
    """Cheap checks before any model is loaded: site syntax, unit indices, SAE files, corpus."""
    c = cfg.collect
    sites = expand_sites(c.site)
    units = cfg.unit_indices
    negative = [u for u in units if u < 0]
    if negative:
        raise CollectError(f"unit indices must be non-negative; got {negative}")
    repeated = sorted({u for u in units if units.count(u) > 1})
    if repeated:
        raise CollectError(f"unit indices are listed more than once: {repeated}")
    if c.sae:
        sae_site = check_sae(c.sae)
        if "site" in c.model_fields_set and (len(sites) != 1 or sites[0] != sae_site):
            raise CollectError(
                f"collect.site '{c.site}' does not match the SAE's hook, which reads "
                f"'{sae_site}'; leave collect.site out or set it to '{sae_site}'"
            )
    check_source(cfg.corpus.source, cfg.corpus.text_field)
    if cfg.corpus.ood_source:
        check_source(cfg.corpus.ood_source, cfg.corpus.text_field)


@dataclass(frozen=True)
class Plan:
    """What one forward pass reads: the hooked sites, what each keeps, and the units' columns."""

    sites: list[ResolvedSite]
    keep: list[list[int] | None]
    """Per site, the indices its hook keeps (None: the whole width, for an SAE to encode)."""
    columns: list[tuple[str, int]]
    """(site, index) of each column of the activations handed to selection."""
    sae: SAE | None = None
    features: list[int] | None = None


def plan_units(cfg: RunConfig, model: Any, sae: SAE | None = None) -> Plan:
    """Resolve the sites (and fit the SAE) against the loaded model; CollectError on mismatch."""
    units = cfg.unit_indices
    if sae is not None:
        n_layers = len(_layout(model)[0])
        if sae.site.layer >= n_layers:
            raise CollectError(
                f"SAE {sae.sae_id} reads '{sae.site}' but the model has {n_layers} layers"
            )
        site = _resolve(model, sae.site, [])
        check_sae_fits(sae, site.width, units)
        return Plan([site], [None], [(str(sae.site), u) for u in units], sae, units)
    sites = resolve_sites(model, cfg.collect.site, units)
    columns = [(str(s.name), u) for s in sites for u in units]
    return Plan(sites, [list(units)] * len(sites), columns)


def collect(
    cfg: RunConfig,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    checkpoint_every: int | None = 200,
    checkpoint_dir: str | Path | None = None,
) -> CollectResult:
    """Collect top, random and out-of-distribution windows and statistics for the config's units.

    ``progress(done_windows, total_windows_estimate)`` is called after every batch; the estimate
    is ``max_windows`` per corpus until a corpus runs out. The streaming state is saved every
    ``checkpoint_every`` batches (None: never) under ``checkpoint_dir`` (default: the cache
    directory's ``collect/``) and removed when the run completes; ``resume=True`` continues
    from a saved state of the same config, subject and SAE, or starts afresh when there is none.
    """
    validate_inputs(cfg)
    c = cfg.collect
    sae = load_sae(c.sae) if c.sae else None
    try:
        loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    except ModelNotFoundError as e:
        raise CollectError(str(e)) from e
    model, tokenizer = loaded.model, loaded.tokenizer
    plan = plan_units(cfg, model, sae)
    frame = special_frame(tokenizer)
    check_window_size(model, c.window_tokens, frame)
    subject = Subject(
        name=cfg.subject.model,
        weights_hash=loaded.weights_hash,
        architecture=model.config.model_type,
        n_layers=model.config.num_hidden_layers,
    )

    n_units = len(plan.columns)
    k = n_top_needed(c)
    k += max(2, k // 4)  # margin: repeated text is passed over when splits are dealt
    shape = (c.window_tokens, n_units)
    # The random sample must still fill three random splits after a unit's top windows are
    # taken out of it; the OOD sample one split.
    main = _Pass(
        RandomSample(3 * c.n_random + k, c.seed, shape), TopWindows(k, n_units, c.window_tokens)
    )
    ood = _Pass(RandomSample(c.n_random + k, c.seed + 2, shape))
    tokens = RandomSample(token_sample_capacity(n_units), c.seed + 1, (n_units,))
    stats = RunningStats(n_units, c.firing_threshold)
    total = c.max_windows * (2 if cfg.corpus.ood_source else 1)

    key = content_hash(cfg.config_hash, loaded.weights_hash, sae.sae_id if sae else None)
    ckpt = checkpoint_path(key, checkpoint_dir)
    corpora: dict[str, tuple[str, int, int]] = {}  # label -> (corpus id, documents, skipped)

    def snapshot() -> dict[str, Any]:
        return {
            "main": main.state_dict(),
            "ood": ood.state_dict(),
            "tokens": tokens.state_dict(),
            "stats": stats.state_dict(),
            "corpora": {k: list(v) for k, v in corpora.items()},
        }

    saved = load_checkpoint(ckpt) if resume else None
    if saved is not None:
        main.load_state_dict(saved["main"])
        ood.load_state_dict(saved["ood"])
        tokens.load_state_dict(saved["tokens"])
        stats.load_state_dict(saved["stats"])
        corpora.update({k: tuple(v) for k, v in saved["corpora"].items()})  # type: ignore[misc]
        if "corpus" in corpora:
            total -= c.max_windows - main.n_windows
    batches = 0

    def run(label: str, source: str, scan: _Pass, on_batch: Callable[[torch.Tensor], None]) -> None:
        nonlocal total, batches
        if label in corpora:  # finished before the checkpoint
            return
        docs = open_corpus(source, cfg.corpus.text_field, cfg.corpus.max_documents)
        windows = cut_windows(docs, tokenizer, c.window_tokens, c.max_windows)
        windows = itertools.islice(windows, scan.n_windows, None)  # skip what a checkpoint holds
        for batch, acts in _activations(model, plan, frame, windows, c.batch_size):
            scan.update(batch, acts)
            on_batch(acts)
            batches += 1
            if checkpoint_every and batches % checkpoint_every == 0:
                save_checkpoint(ckpt, snapshot())
            if progress:
                progress(main.n_windows + ood.n_windows, total)
        total -= c.max_windows - scan.n_windows  # this corpus is done: no more estimating
        if scan.n_windows == 0:
            raise CollectError(
                f"{label} '{source}' yielded no window of {c.window_tokens} tokens "
                f"({docs.n_documents} documents read, {docs.skipped} skipped as non-UTF-8 or "
                "empty); use a larger corpus or a smaller collect.window_tokens"
            )
        corpora[label] = (docs.corpus_id, docs.n_documents, docs.skipped)

    def on_main_batch(acts: torch.Tensor) -> None:
        flat = acts.reshape(-1, n_units)
        tokens.update(flat, torch.arange(stats.n_tokens, stats.n_tokens + len(flat)))
        stats.update(acts)

    run("corpus", cfg.corpus.source, main, on_main_batch)
    if cfg.corpus.ood_source:
        if checkpoint_every:
            save_checkpoint(ckpt, snapshot())
        run("out-of-distribution corpus", cfg.corpus.ood_source, ood, lambda _: None)
    corpus_id, n_documents, skipped = corpora["corpus"]
    ood_id = corpora.get("out-of-distribution corpus", ("",))[0]
    counts = (n_documents, main.n_windows, skipped)
    result = _finish(
        cfg, subject, plan, (main, ood, tokens, stats), tokenizer, (corpus_id, ood_id), counts
    )
    ckpt.unlink(missing_ok=True)
    return result


def _finish(
    cfg: RunConfig,
    subject: Subject,
    plan: Plan,
    state: tuple[_Pass, _Pass, RandomSample, RunningStats],
    tokenizer: Any,
    corpus_ids: tuple[str, str],
    counts: tuple[int, int, int],
) -> CollectResult:
    """Deal each unit's windows into splits and build the records."""
    c = cfg.collect
    main, ood, tokens, stats = state
    decoder = TokenDecoder(tokenizer)
    records: dict[tuple[int, int], Window] = {}  # (0 main / 1 OOD, corpus index) -> window

    def candidate(source: int, raw: RawWindow, acts: torch.Tensor) -> Candidate:
        key = (source, raw.index)
        if key not in records:
            records[key] = decoder.window(corpus_ids[source], raw)
        return Candidate(records[key].window_id, raw.token_ids, tuple(acts.tolist()))

    qs = quantiles(tokens.rows, list(c.quantiles))
    top = main.top
    assert top is not None
    top_index, top_acts = top.index.tolist(), top.acts
    main_sampled, ood_sampled = list(main.sampled()), list(ood.sampled())
    dead_units = (stats.max <= c.firing_threshold).tolist()
    maxes, means, rates = stats.max.tolist(), stats.mean.tolist(), stats.firing_rate.tolist()
    unit_quantiles = qs.t().tolist()
    sae_id = plan.sae.sae_id if plan.sae else None
    unit_records = []
    for u, (site, unit_index) in enumerate(plan.columns):
        dead = bool(dead_units[u])
        placed: tuple[UnitWindow, ...] = ()
        if not dead:
            placed = assign_unit(
                (
                    (rank, candidate(0, main.store[i], top_acts[u, rank]))
                    for rank, i in enumerate(top_index[u])
                ),
                (candidate(0, main.store[i], row[:, u]) for i, row in main_sampled),
                (candidate(1, ood.store[i], row[:, u]) for i, row in ood_sampled),
                c,
            )
        unit_stats = UnitStats(
            n_tokens=stats.n_tokens,
            max=maxes[u],
            mean=means[u],
            firing_rate=rates[u],
            quantiles=tuple(unit_quantiles[u]),
            dead=dead,
        )
        unit_id = UnitId(subject_id=subject.subject_id, site=site, index=unit_index, sae_id=sae_id)
        unit_records.append(UnitExamples(unit=unit_id, stats=unit_stats, windows=placed))

    used = {w.window_id for unit in unit_records for w in unit.windows}
    return CollectResult(
        subject=subject,
        corpus_id=corpus_ids[0],
        windows=tuple(records[key] for key in sorted(records) if records[key].window_id in used),
        units=tuple(unit_records),
        n_documents=counts[0],
        n_windows=counts[1],
        skipped_documents=counts[2],
    )


class _Pass:
    """What a pass over one corpus keeps: a random sample of windows, optionally the top windows,
    and the tokens of the windows still kept (pruned as the store doubles, so memory stays
    bounded by the kept windows).
    """

    def __init__(self, sample: RandomSample, top: TopWindows | None = None) -> None:
        self.sample = sample
        self.top = top
        self.store: dict[int, RawWindow] = {}
        self.n_windows = 0
        self._prune_at = 1024

    def update(self, batch: list[RawWindow], acts: torch.Tensor) -> None:
        index = torch.arange(batch[0].index, batch[0].index + len(batch))
        self.sample.update(acts, index)
        if self.top is not None:
            self.top.update(acts, index)
        self.store.update((w.index, w) for w in batch)
        self.n_windows += len(batch)
        if len(self.store) > self._prune_at:
            self.prune()
            self._prune_at = max(1024, 2 * len(self.store))

    def prune(self) -> None:
        keep = set(self.sample.kept_index().tolist())
        if self.top is not None:
            keep |= set(self.top.kept_windows().unique().tolist())
        self.store = {i: w for i, w in self.store.items() if i in keep}

    def sampled(self) -> Iterator[tuple[int, torch.Tensor]]:
        """The random sample in random order: (corpus index, activations [pos, unit])."""
        return zip(self.sample.index.tolist(), self.sample.rows, strict=True)

    def state_dict(self) -> dict[str, Any]:
        self.prune()
        return {
            "n_windows": self.n_windows,
            "sample": self.sample.state_dict(),
            "top": self.top.state_dict() if self.top is not None else None,
            "store": [[w.index, w.doc_id, w.start, list(w.token_ids)] for w in self.store.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_windows = int(state["n_windows"])
        self.sample.load_state_dict(state["sample"])
        if self.top is not None:
            self.top.load_state_dict(state["top"])
        self.store = {i: RawWindow(i, d, s, tuple(t)) for i, d, s, t in state["store"]}


def _activations(
    model: Any,
    plan: Plan,
    frame: Frame,
    windows: Iterable[RawWindow],
    batch_size: int,
) -> Iterator[tuple[list[RawWindow], torch.Tensor]]:
    """Per batch: the windows and the units' activations, float32 [batch, pos, unit]."""
    base = model.base_model  # skip the LM head: the sites are always inside the base model
    start = len(frame.prefix)
    buffer = torch.empty(0)  # reused across batches (fresh big tensors cost page faults)
    for batch in batched(windows, batch_size):
        ids = frame.wrap(batch).to(model.device)
        # The hooks raise StopForward once they have every site's activations: the layers
        # after the last site are never run.
        with (
            torch.inference_mode(),
            capture_many(plan.sites, plan.keep) as captured,
            contextlib.suppress(StopForward),
        ):
            base(input_ids=ids, attention_mask=torch.ones_like(ids))
        if not captured:
            names = ", ".join(str(s.name) for s in plan.sites)
            raise CollectError(f"the hooks at sites {names} did not all fire")
        width = len(batch[0].token_ids)
        parts = [t[:, start : start + width] for t in captured]
        if plan.sae is not None:
            with torch.inference_mode():
                acts = plan.sae.encode(parts[0], plan.features)
        else:
            shape = (len(batch), width, len(plan.columns))
            if buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
                buffer = torch.empty(shape)
            acts = torch.cat(parts, dim=-1, out=buffer[: len(batch)])
        yield batch, acts  # only valid until the next batch: the buffer is reused
