"""The collect stage: run the subject over a corpus and keep, per unit, what later stages need.

One pass over the corpus in batches. Each batch's activations at the sites (selected units of
every site side by side, float32; or the features of an SAE) update the per-unit top windows,
the windows sampled from activation bins below the top (``collect.n_quantile``), a shared random
sample of windows, a random sample of tokens (for quantiles) and running statistics, then are
dropped: memory is bounded by units × kept examples, never by the corpus. An optional second
corpus contributes a random sample of windows for the out-of-distribution split. Finally each
unit's windows are dealt into splits and the records' tables built, batched over units
(``assemble``).

The streaming state is checkpointed every ``checkpoint_every`` batches once a minute has passed
since the last checkpoint (``checkpoint_seconds``); ``resume=True`` continues
from the checkpoint (the corpus is re-read, and the windows already seen are skipped without a
forward pass), with a result identical to an uninterrupted run. The checkpoint's name hashes the
config, the subject's weights, the SAE and the corpora's ids (a file corpus's id holds a hash of
its bytes); the windows skipped on resuming are hashed too and compared with those the
checkpoint saw, and a corpus whose content changed under the same id is collected afresh.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict, field_serializer, field_validator

from neuroscribe.collect.assemble import assemble, gc_paused, tables_from_rows, tables_to_rows
from neuroscribe.collect.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from neuroscribe.collect.checkpoint import checkpoint_seconds as seconds_between_checkpoints
from neuroscribe.collect.corpus import check_source, open_corpus
from neuroscribe.collect.errors import CollectError, few
from neuroscribe.collect.forward import activations, plan_units
from neuroscribe.collect.quantile import QuantileSample
from neuroscribe.collect.sae import check_sae, load_sae
from neuroscribe.collect.select import RandomSample, RunningStats, TopWindows, token_sample_capacity
from neuroscribe.collect.sites import expand_sites
from neuroscribe.collect.splits import n_top_needed
from neuroscribe.collect.state import CorpusPass
from neuroscribe.collect.windows import (
    TokenDecoder,
    batched,
    check_window_size,
    cut_windows,
    prefetched,
    special_frame,
)
from neuroscribe.config import CollectConfig, RunConfig
from neuroscribe.ids import content_hash
from neuroscribe.models import ModelNotFoundError, load_model
from neuroscribe.records import Record, Subject, UnitExamples, UnitId, Window
from neuroscribe.warehouse.columnar import UnitTables, unit_records

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


class CollectResult(Record):
    """Everything collection yields: the subject, the windows used, and each unit's examples
    (``tables``, in the warehouse's columns; ``units``, the same as records, built on first use)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    subject: Subject
    corpus_id: str
    """``stdlib:<python version>``, ``file:<path>@<content hash>`` or ``hf:<name>``."""
    windows: tuple[Window, ...]
    """Only the windows that at least one unit uses, main corpus first, in corpus order."""
    tables: UnitTables
    """``units`` in unit order and ``unit_windows`` unit by unit (``windows`` is empty)."""
    n_documents: int
    """Usable documents read from the main corpus."""
    n_windows: int
    """Windows of the main corpus run through the model."""
    skipped_documents: int
    """Documents of the main corpus skipped as non-UTF-8 or empty."""

    @field_validator("tables", mode="before")
    @classmethod
    def _tables_from_json(cls, v: Any) -> Any:
        return tables_from_rows(v) if isinstance(v, dict) else v

    @field_serializer("tables")
    def _tables_to_json(self, v: UnitTables) -> dict[str, list[dict]]:
        return tables_to_rows(v)

    @cached_property
    def units(self) -> tuple[UnitExamples, ...]:
        """Each unit's record: its statistics and its windows in the order they were dealt."""
        return tuple(unit_records(self.tables)[0])


def validate_inputs(cfg: RunConfig) -> None:
    """Cheap checks before any model is loaded: site syntax, unit indices, SAE files, corpus."""
    c = cfg.collect
    sites = expand_sites(c.site)
    if isinstance(c.units, list):  # a count N (units 0..N-1) cannot be negative or repeated
        negative = [u for u in c.units if u < 0]
        if negative:
            raise CollectError(f"unit indices must be non-negative; got {few(negative)}")
        counts = Counter(c.units)
        repeated = sorted(u for u, n in counts.items() if n > 1)
        if repeated:
            raise CollectError(f"unit indices are listed more than once: {few(repeated)}")
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


def collect(
    cfg: RunConfig,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    checkpoint_every: int | None = 200,
    checkpoint_seconds: float | None = None,
    checkpoint_dir: str | Path | None = None,
) -> CollectResult:
    """Collect top, random and out-of-distribution windows and statistics for the config's units.

    ``progress(done_windows, total_windows_estimate)`` is called after every batch; the estimate
    is ``max_windows`` per corpus until a corpus runs out. The streaming state is saved once at
    least ``checkpoint_every`` batches (None: never) and ``checkpoint_seconds`` (default
    ``checkpoint.checkpoint_seconds``: 60 s or $NEUROSCRIBE_CHECKPOINT_SECONDS) have passed since
    the start or the last save, under ``checkpoint_dir`` (default: the cache directory's
    ``collect/``) and removed when the run completes; ``resume=True`` continues
    from a saved state of the same config, subject and SAE, or starts afresh when there is none.
    """
    validate_inputs(cfg)
    try:
        min_seconds = seconds_between_checkpoints(checkpoint_seconds)
    except ValueError as e:
        raise CollectError(str(e)) from None
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
    sources = {"corpus": cfg.corpus.source}
    if cfg.corpus.ood_source:
        sources["out-of-distribution corpus"] = cfg.corpus.ood_source
    docs = {
        label: open_corpus(source, cfg.corpus.text_field, cfg.corpus.max_documents)
        for label, source in sources.items()
    }
    # The key names everything the streaming state depends on, the corpora's content included
    # (a file corpus's id holds a hash of its bytes); resuming also checks the windows re-read.
    key = content_hash(
        cfg.config_hash,
        loaded.weights_hash,
        sae.sae_id if sae else None,
        [d.corpus_id for d in docs.values()],
    )
    ckpt = checkpoint_path(key, checkpoint_dir)
    main, ood, tokens = _new_state(c, n_units)
    total = c.max_windows * len(sources)
    corpora: dict[str, tuple[str, int, int]] = {}  # label -> (corpus id, documents, skipped)

    def snapshot() -> dict[str, Any]:
        return {
            "main": main.state_dict(),
            "ood": ood.state_dict(),
            "tokens": tokens.state_dict(),
            "corpora": {k: list(v) for k, v in corpora.items()},
        }

    saved = load_checkpoint(ckpt) if resume else None
    if saved is not None:
        main.load_state_dict(saved["main"])
        ood.load_state_dict(saved["ood"])
        tokens.load_state_dict(saved["tokens"])
        corpora.update({k: tuple(v) for k, v in saved["corpora"].items()})  # type: ignore[misc]
        if "corpus" in corpora:
            total -= c.max_windows - main.n_windows
    batches = 0
    last_save = (0, time.monotonic())  # (batches, clock) at the start or the last checkpoint

    def save() -> None:
        nonlocal last_save
        save_checkpoint(ckpt, snapshot())
        last_save = (batches, time.monotonic())

    def run(label: str, scan: CorpusPass, on_batch: Callable[[torch.Tensor], None]) -> None:
        nonlocal total, batches
        if label in corpora:  # finished before the checkpoint
            return
        stream = docs[label]
        windows = cut_windows(stream, tokenizer, c.window_tokens, c.max_windows)
        if not scan.skip_read(windows):  # consumes the windows the checkpoint holds
            # Same corpus id, other content (e.g. a dataset revised under the same name): this
            # pass starts afresh. The main corpus is checked before any forward pass, and the
            # OOD pass stands alone.
            log.warning("%s changed since the checkpoint was written: collecting it afresh", label)
            fresh_main, fresh_ood, fresh_tokens = _new_state(c, n_units)
            if scan is main:
                main.load_state_dict(fresh_main.state_dict())
                tokens.load_state_dict(fresh_tokens.state_dict())
            else:
                ood.load_state_dict(fresh_ood.state_dict())
            stream = docs[label] = open_corpus(
                sources[label], cfg.corpus.text_field, cfg.corpus.max_documents
            )
            windows = cut_windows(stream, tokenizer, c.window_tokens, c.max_windows)
        batches_read = prefetched(batched(windows, c.batch_size))
        for batch, acts in activations(model, plan, frame, batches_read):
            on_batch(acts)
            scan.update(batch, acts)
            batches += 1
            if (
                checkpoint_every
                and batches - last_save[0] >= checkpoint_every
                and time.monotonic() - last_save[1] >= min_seconds
            ):
                save()
            if progress:
                progress(main.n_windows + ood.n_windows, total)
        total -= c.max_windows - scan.n_windows  # this corpus is done: no more estimating
        if scan.n_windows == 0:
            raise CollectError(
                f"{label} '{sources[label]}' yielded no window of {c.window_tokens} tokens "
                f"({stream.n_documents} documents read, {stream.skipped} skipped as non-UTF-8 "
                "or empty); use a larger corpus or a smaller collect.window_tokens"
            )
        corpora[label] = (stream.corpus_id, stream.n_documents, stream.skipped)

    def on_main_batch(acts: torch.Tensor) -> None:
        flat = acts.reshape(-1, n_units)
        n_tokens = main.stats.n_tokens  # type: ignore[union-attr]
        tokens.update(flat, torch.arange(n_tokens, n_tokens + len(flat)))

    run("corpus", main, on_main_batch)
    if cfg.corpus.ood_source:
        if checkpoint_every and time.monotonic() - last_save[1] >= min_seconds:
            save()  # the main corpus is done: a kill in the OOD pass does not lose it
        run("out-of-distribution corpus", ood, lambda _: None)
    corpus_id, n_documents, skipped = corpora["corpus"]
    ood_id = corpora.get("out-of-distribution corpus", ("",))[0]
    sae_id = sae.sae_id if sae else None
    with gc_paused():
        windows, tables = assemble(
            c,
            plan.columns,
            lambda site, index: UnitId(
                subject_id=subject.subject_id, site=site, index=index, sae_id=sae_id
            ),
            (main, ood, tokens, main.stats),  # type: ignore[arg-type]
            TokenDecoder(tokenizer),
            (corpus_id, ood_id),
        )
        result = CollectResult(
            subject=subject,
            corpus_id=corpus_id,
            windows=windows,
            tables=tables,
            n_documents=n_documents,
            n_windows=main.n_windows,
            skipped_documents=skipped,
        )
    ckpt.unlink(missing_ok=True)
    return result


def _new_state(c: CollectConfig, n_units: int) -> tuple[CorpusPass, CorpusPass, RandomSample]:
    """Fresh streaming state: the main pass, the OOD pass and the token sample."""
    k = n_top_needed(c)
    k += max(2, k // 4)  # margin: repeated text is passed over when splits are dealt
    shape = (c.window_tokens, n_units)
    quantile = None
    if c.n_quantile:
        # Twice the windows dealt per bin: windows that leave a bin as the max rises, or that
        # are also top windows, leave enough behind.
        slots = 2 * c.n_quantile
        quantile = QuantileSample(
            n_units, c.quantile_bins, slots, c.window_tokens, c.seed + 3, c.firing_threshold
        )
    # The random sample must still fill three random splits after a unit's top and quantile
    # windows are taken out of it; the OOD sample one split.
    n_explain_extra = c.quantile_bins * c.n_quantile
    main = CorpusPass(
        RandomSample(3 * c.n_random + k + n_explain_extra, c.seed, shape),
        TopWindows(k, n_units, c.window_tokens),
        quantile,
        RunningStats(n_units, c.firing_threshold),
    )
    ood = CorpusPass(RandomSample(c.n_random + k + n_explain_extra, c.seed + 2, shape))
    tokens = RandomSample(token_sample_capacity(n_units), c.seed + 1, (n_units,))
    return main, ood, tokens
