"""Sparse autoencoders of one site compared latent by latent (``compare.saes``): by their
activations on the same corpus windows (Pearson r, streamed as for models: ``stats``) and by
the cosine of their decoder directions (Paulo & Belrose's matching across seeds), each as best
partners both ways and a one-to-one (Hungarian) matching. SAEs in the SAELens layout
(``collect.sae``), two or more, all read by one subject: ``compare.models``' one model when it
names one, else ``subject.model``.

One pass: each batch of windows runs through the subject up to the SAEs' site, every SAE
encodes the site's activations, and each SAE's latents update one ``Moments`` (with its Gram
matrix when all of them fit ``compare.cka_budget_mb``: then CKA too, and a latent against a
bitwise copy of itself gets r = 1 exactly) and each pair of SAEs one ``CrossProducts``.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroscribe import progress
from neuroscribe.collect.corpus import check_source, open_corpus
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.sae import SAE, WEIGHTS_FILE, check_sae, check_sae_fits, load_sae
from neuroscribe.collect.sites import ResolvedSite, StopForward, capture_many, resolve_site
from neuroscribe.collect.windows import (
    Frame,
    batched,
    check_window_size,
    cut_windows,
    special_frame,
)
from neuroscribe.compare.match import decoder_cosine
from neuroscribe.compare.stats import CrossProducts, Moments
from neuroscribe.compare.stream import Comparison, SitePair, UnitMatches, match_units
from neuroscribe.compare.subjects import CompareError, check_corpus_window, subject_record
from neuroscribe.config import RunConfig
from neuroscribe.models import load_model, resolve_source
from neuroscribe.records import Subject


@dataclass(frozen=True)
class LoadedSAEs:
    """The SAEs of a comparison with the subject they read, checked and ready for the pass."""

    subject: Subject
    model: Any
    tokenizer: Any
    frame: Frame
    site: ResolvedSite
    saes: list[SAE]
    paths: list[str]
    decoders: list[torch.Tensor]


def decoder_weights(path: str | Path) -> torch.Tensor:
    """``W_dec`` [d_sae, d_in] of an SAE folder; CollectError when the file lacks it."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(path).expanduser() / WEIGHTS_FILE))
    if "W_dec" not in weights:
        raise CollectError(f"SAE '{path}' has no W_dec: its latents cannot be matched by decoder")
    return weights["W_dec"].float()


def load_saes(cfg: RunConfig) -> LoadedSAEs:
    """Load and check ``cfg.compare.saes`` and their subject; CompareError (or another
    ``BadInput``) naming the problem: fewer than two SAEs, more than one model, a missing or
    unreadable folder, SAEs of different sites, an SAE whose input width is not the site's."""
    paths, models = list(cfg.compare.saes), cfg.compare.models
    if len(paths) < 2:
        got = f"only '{paths[0]}'" if paths else "none"
        raise CompareError(f"compare needs two or more SAEs (--sae A --sae B); got {got}")
    if len(models) > 1:
        raise CompareError(
            f"--sae compares SAEs read by one model, but {len(models)} models are given "
            f"({', '.join(models)}); give at most one --model with --sae, or compare the models "
            "without --sae"
        )
    sites = [check_sae(p) for p in paths]  # folders and configs, before any weight is read
    for path, other in zip(paths[1:], sites[1:], strict=True):
        if other != sites[0]:
            raise CompareError(
                f"SAE '{paths[0]}' reads {sites[0]} but '{path}' reads {other}; "
                "compare SAEs of one site"
            )
    check_source(cfg.corpus.source, cfg.corpus.text_field)
    name = models[0] if models else cfg.subject.model
    resolve_source(name, cfg.subject.gguf_file)
    saes = [load_sae(p) for p in paths]
    decoders = [decoder_weights(p) for p in paths]
    lm = load_model(name, cfg.subject.gguf_file, cfg.subject.dtype)
    site = resolve_site(lm.model, str(sites[0]), [])
    for sae in saes:
        check_sae_fits(sae, site.width, [])
    frame = special_frame(lm.tokenizer)
    check_window_size(lm.model, cfg.collect.window_tokens, frame)
    check_corpus_window(cfg, lm.tokenizer)
    subject = subject_record(name, lm)
    return LoadedSAEs(subject, lm.model, lm.tokenizer, frame, site, saes, paths, decoders)


def compare_sae_set(cfg: RunConfig) -> Comparison:
    """Every pair (i, j), i < j, of ``cfg.compare.saes`` compared on the corpus windows of
    ``cfg`` (see the module docstring): one ``SitePair`` per SAE pair, with its matches by
    activation (``matches``) and by decoder cosine (``by_decoder``)."""
    loaded = load_saes(cfg)
    saes, c = loaded.saes, cfg.collect
    widths = [s.d_sae for s in saes]
    pairs = list(itertools.combinations(range(len(saes)), 2))
    gram = 8 * sum(w * w for w in widths) <= cfg.compare.cka_budget_mb * 2**20
    sides = [Moments(w, gram=gram) for w in widths]
    acc = {(i, j): CrossProducts(sides[i], sides[j]) for i, j in pairs}
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    windows = cut_windows(docs, loaded.tokenizer, c.window_tokens, c.max_windows)
    n_windows = 0
    with progress.task("compare SAEs", c.max_windows) as advance:
        for batch in batched(windows, c.batch_size):
            x = _site_activations(loaded, batch)
            shifted = [side.add(sae.encode(x)) for side, sae in zip(sides, saes, strict=True)]
            for (i, j), cross in acc.items():
                cross.add(shifted[i], shifted[j])
            n_windows += len(batch)
            advance(len(batch))
    site = str(loaded.site.name)
    results = []
    for i, j in pairs:
        cc = acc.pop((i, j))
        live_a, live_b = cc.live()
        results.append(
            SitePair(
                subject_a=loaded.subject,
                subject_b=loaded.subject,
                site_a=site,
                site_b=site,
                n_tokens=cc.n,
                n_a=cc.n_a,
                n_b=cc.n_b,
                live_a=int(live_a.sum()),
                live_b=int(live_b.sum()),
                cka=cc.cka() if gram else float("nan"),
                matches=match_units(cc.correlation()),
                sae_a=saes[i].sae_id,
                sae_b=saes[j].sae_id,
                by_decoder=match_units(decoder_cosine(loaded.decoders[i], loaded.decoders[j])),
            )
        )
    saes_by_id = {s.sae_id: p for s, p in zip(saes, loaded.paths, strict=True)}
    return Comparison([loaded.subject], docs.corpus_id, n_windows, results, True, saes_by_id)


def _site_activations(loaded: LoadedSAEs, batch: list[Any]) -> torch.Tensor:
    """float32 [windows * tokens, width] at the SAEs' site on ``batch``, framing dropped."""
    ids = loaded.frame.wrap(batch).to(loaded.model.device)
    with (
        torch.inference_mode(),
        capture_many([loaded.site], [None]) as got,
        contextlib.suppress(StopForward),
    ):
        loaded.model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))
    start, width = len(loaded.frame.prefix), len(batch[0].token_ids)
    return got[0][:, start : start + width].reshape(-1, loaded.site.width)


@dataclass(frozen=True)
class SAEComparison:
    """Two SAEs compared (``compare_saes``)."""

    sae_a: str
    sae_b: str
    site: str
    n_tokens: int
    by_activation: UnitMatches
    """From Pearson r of the latents' activations over the corpus's tokens."""
    by_decoder: UnitMatches
    """From the cosine similarity of the latents' decoder rows."""

    def agreement(self) -> float:
        """Share of the one-to-one pairs by activation that the decoder matching also makes."""
        pairs = [_one_to_one(m) for m in (self.by_activation, self.by_decoder)]
        if not pairs[0]:
            return float("nan")
        return len(pairs[0] & pairs[1]) / len(pairs[0])


def _one_to_one(m: UnitMatches) -> set[tuple[int, int]]:
    one = np.array(m.kind) == "one_to_one"
    return set(zip(m.unit_a[one].tolist(), m.unit_b[one].tolist(), strict=True))


def compare_saes(cfg: RunConfig, sae_a: str | Path, sae_b: str | Path) -> SAEComparison:
    """Two SAEs on the activations of ``cfg``'s subject (``compare_sae_set`` with these two)."""
    compare = cfg.compare.model_copy(update={"saes": [str(sae_a), str(sae_b)]})
    (pair,) = compare_sae_set(cfg.model_copy(update={"compare": compare})).pairs
    assert pair.matches is not None and pair.by_decoder is not None
    assert pair.sae_a is not None and pair.sae_b is not None
    return SAEComparison(pair.sae_a, pair.sae_b, pair.site_a, pair.n_tokens, pair.matches,
                         pair.by_decoder)
