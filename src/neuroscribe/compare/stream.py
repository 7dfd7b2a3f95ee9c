"""The comparison pass: the same corpus windows through every subject, statistics accumulated
between every pair of subjects and every pair of compared sites, then units matched.

Each batch of windows is cut once (with the shared tokenizer), framed with each subject's own
special tokens and run through each subject up to its last compared site; the activations at the
window's tokens (framing dropped) update one ``Moments`` (sums and Gram matrix) per subject and
site and one ``CrossProducts`` per (subject pair, site pair), and are dropped. Memory is
units_A x units_B per site pair, never the corpus. On a corpus longer than
``compare.max_stat_tokens`` the statistics read every k-th position of each window (the offset
turning from window to window), so their cost, which per token is about that of the forward
pass itself, stops growing with the corpus; every window still goes through every subject.

Site pairs: every compared site with the same site of the other subject (these are matched unit
by unit), and every other pair for CKA only (the layer x layer heatmap). Every pair's CKA comes
from the whole-corpus statistics (each side's Gram matrix) when ``compare.cka_budget_mb`` allows
them all; else no Gram matrix is kept and every pair's CKA comes from the minibatch estimator
(``minibatch``), whose memory does not grow with the widths' product. Subject pairs: every
pair (i, j), i < j, in the order given.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuroscribe import progress
from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.sites import StopForward, capture_many
from neuroscribe.collect.windows import RawWindow, batched, cut_windows, prefetched
from neuroscribe.compare.match import best_partners, one_to_one
from neuroscribe.compare.minibatch import MinibatchCKA
from neuroscribe.compare.stats import CrossProducts, Moments
from neuroscribe.compare.subjects import LoadedSubject, load_subjects
from neuroscribe.config import RunConfig
from neuroscribe.records import Subject

Array = np.ndarray


MINIBATCH = 256
"""Tokens per minibatch of the minibatch CKA."""

STAT_ROWS = 1024
"""Positions held (every compared site's activations at them) before they are added to the
statistics: products over at least this many rows keep the matmuls efficient when positions are
sampled (``compare.max_stat_tokens``); at most a few MiB per site."""


@dataclass(frozen=True)
class UnitMatches:
    """Matches of one compared site pair, as parallel arrays. ``kind``: ``best_a`` (each A unit's
    best B partner), ``best_b`` (each B unit's best A partner) or ``one_to_one`` (the Hungarian
    matching). A unit constant over the corpus has no partner: index -1, r NaN."""

    kind: list[str]
    unit_a: Array
    unit_b: Array
    r: Array


@dataclass(frozen=True)
class SitePair:
    """What one (subject pair, site pair) came to."""

    subject_a: Subject
    subject_b: Subject
    site_a: str
    site_b: str
    n_tokens: int
    n_a: int
    n_b: int
    live_a: int
    live_b: int
    cka: float
    matches: UnitMatches | None
    """Unit matches for a pair of the same site, by activation (Pearson r); None for a CKA-only
    pair."""
    cka_method: str = "corpus"
    """``corpus``: CKA from the whole-corpus covariances (``stats``); ``minibatch``: the
    minibatch estimator (``minibatch``), for pairs over ``compare.cka_budget_mb``."""
    sae_a: str | None = None
    """The SAE whose latents are A's units (``sae_id``); None: the subject's own units."""
    sae_b: str | None = None
    by_decoder: UnitMatches | None = None
    """For a pair of SAEs: the matches by the cosine of their decoder directions."""


@dataclass(frozen=True)
class Comparison:
    subjects: list[Subject]
    corpus_id: str
    n_windows: int
    pairs: list[SitePair]
    all_site_pairs: bool
    """False when the CKA budget allowed the whole-corpus statistics for pairs of the same site
    only (the other pairs then get the minibatch CKA)."""
    saes: dict[str, str] = field(default_factory=dict)
    """For a comparison of SAEs: each SAE's folder, by ``sae_id``."""


def match_units(r: Array) -> UnitMatches:
    """Best partners both ways and the one-to-one matching, from r [n_a, n_b]."""
    forward, backward, matching = best_partners(r), best_partners(r.T), one_to_one(r)
    n_a, n_b = r.shape
    return UnitMatches(
        kind=["best_a"] * n_a + ["best_b"] * n_b + ["one_to_one"] * len(matching.a),
        unit_a=np.concatenate([np.arange(n_a), backward.index, matching.a]),
        unit_b=np.concatenate([forward.index, np.arange(n_b), matching.b]),
        r=np.concatenate([forward.r, backward.r, matching.r]),
    )


def every_pair(subjects: list[LoadedSubject]) -> list[tuple[int, int, int, int]]:
    """(subject i, site of i, subject j, site of j) for every i < j and every two sites."""
    return [
        (i, a, j, b)
        for i, j in itertools.combinations(range(len(subjects)), 2)
        for a in range(len(subjects[i].sites))
        for b in range(len(subjects[j].sites))
    ]


def plan_pairs(
    subjects: list[LoadedSubject], budget_bytes: int
) -> tuple[list[tuple[int, int, int, int]], bool]:
    """(subject i, site of i, subject j, site of j) to accumulate, and whether all site pairs
    fit the budget (else only same-site pairs). Cost: 8 bytes per cross-product entry of each
    pair, plus each side's Gram matrix once (shared by every pair it is in)."""
    same: list[tuple[int, int, int, int]] = []
    for i, j in itertools.combinations(range(len(subjects)), 2):
        names_j = {str(s.name): k for k, s in enumerate(subjects[j].sites)}
        same.extend((i, a, j, names_j[str(site.name)]) for a, site in enumerate(subjects[i].sites))

    def cost(pairs: list[tuple[int, int, int, int]]) -> int:
        sides = {(i, a) for i, a, _, _ in pairs} | {(j, b) for _, _, j, b in pairs}
        width = {side: subjects[side[0]].sites[side[1]].width for side in sides}
        grams = sum(w * w for w in width.values())
        return 8 * (grams + sum(width[i, a] * width[j, b] for i, a, j, b in pairs))

    every = every_pair(subjects)
    if len(every) > len(same) and cost(every) <= budget_bytes:
        return every, True
    return same, len(every) == len(same)


def compare_subjects(cfg: RunConfig) -> Comparison:
    """Run the comparison pass of ``cfg`` (see the module docstring) and match the units."""
    subjects = load_subjects(cfg)
    c = cfg.collect
    pairs, all_pairs = plan_pairs(subjects, cfg.compare.cka_budget_mb * 2**20)
    used = sorted({(i, a) for i, a, _, _ in pairs} | {(j, b) for _, _, j, b in pairs})
    # Within the budget every pair's CKA comes from the whole-corpus statistics (each side's
    # Gram matrix kept); over it, no Gram matrix is kept and every pair's CKA, the matched ones'
    # too, comes from the minibatch estimator (one estimator across the heatmap).
    sides = {(i, a): Moments(subjects[i].sites[a].width, gram=all_pairs) for i, a in used}
    acc = {(i, a, j, b): CrossProducts(sides[i, a], sides[j, b]) for i, a, j, b in pairs}
    exact = set(pairs)
    rest = [(i, a, j, b) for i, a, j, b in every_pair(subjects) if (i, a, j, b) not in exact]
    mini = (
        None
        if all_pairs
        else MinibatchCKA((((i, a), (j, b)) for i, a, j, b in every_pair(subjects)), MINIBATCH)
    )
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    windows = cut_windows(docs, subjects[0].tokenizer, c.window_tokens, c.max_windows)
    stride = position_stride(cfg, lambda: _count_windows(cfg, subjects[0].tokenizer))
    n_windows = 0
    pending: list[list[list[torch.Tensor]]] = []  # per batch, per subject, per site
    held = 0

    def accumulate() -> None:
        """The held positions into the statistics, in one product per pair: a few sampled
        positions per batch would make thin matmuls that only move the totals about."""
        nonlocal held
        if not held:
            return
        acts = {
            (i, a): torch.cat([b[i][a] for b in pending]) if len(pending) > 1 else pending[0][i][a]
            for i, a in sides
        }
        pending.clear()
        held = 0
        shifted = {(i, a): m.add(acts.pop((i, a))) for (i, a), m in sides.items()}
        for (i, a, j, b), cross in acc.items():
            cross.add(shifted[i, a], shifted[j, b])
        if mini is not None:
            mini.add(shifted)  # type: ignore[arg-type]

    with progress.task("compare", c.max_windows) as advance:
        for batch in prefetched(batched(windows, c.batch_size)):
            keep = sampled_positions(n_windows, len(batch), len(batch[0].token_ids), stride)
            pending.append([site_activations(s, batch, keep) for s in subjects])
            held += len(pending[-1][0][0])
            if held >= STAT_ROWS:
                accumulate()
            n_windows += len(batch)
            advance(len(batch))
        accumulate()
    if mini is not None:
        mini.finish()
    results = []
    for i, a, j, b in list(acc):
        cc = acc.pop((i, a, j, b))  # dropped once read: r [n_a, n_b] is made one pair at a time
        live_a, live_b = cc.live()
        site_a, site_b = str(subjects[i].sites[a].name), str(subjects[j].sites[b].name)
        results.append(
            SitePair(
                subject_a=subjects[i].subject,
                subject_b=subjects[j].subject,
                site_a=site_a,
                site_b=site_b,
                n_tokens=cc.n,
                n_a=cc.n_a,
                n_b=cc.n_b,
                live_a=int(live_a.sum()),
                live_b=int(live_b.sum()),
                cka=cc.cka() if mini is None else mini.value((i, a), (j, b)),
                matches=match_units(cc.correlation()) if site_a == site_b else None,
                cka_method="corpus" if mini is None else "minibatch",
            )
        )
    if mini is not None:
        for i, a, j, b in rest:
            results.append(
                SitePair(
                    subject_a=subjects[i].subject,
                    subject_b=subjects[j].subject,
                    site_a=str(subjects[i].sites[a].name),
                    site_b=str(subjects[j].sites[b].name),
                    n_tokens=mini.n_tokens,
                    n_a=sides[i, a].width,
                    n_b=sides[j, b].width,
                    live_a=int(sides[i, a].live().sum()),
                    live_b=int(sides[j, b].live().sum()),
                    cka=mini.value((i, a), (j, b)),
                    matches=None,
                    cka_method="minibatch",
                )
            )
    return Comparison([s.subject for s in subjects], docs.corpus_id, n_windows, results, all_pairs)


def position_stride(cfg: RunConfig, count_windows: Callable[[], int]) -> int:
    """k: the statistics read every k-th token position (``compare.max_stat_tokens``), from the
    corpus's windows (``count_windows``, called only when ``collect.max_windows`` could pass the
    cap: the corpus may hold fewer); 1 when every position is read."""
    cap, tokens = cfg.compare.max_stat_tokens, cfg.collect.window_tokens
    if not cap or cfg.collect.max_windows * tokens <= cap:
        return 1
    return max(1, count_windows() * tokens // cap)


def _count_windows(cfg: RunConfig, tokenizer: Any) -> int:
    """The windows the comparison will read: the corpus cut once ahead (tokenizing only)."""
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    c = cfg.collect
    return sum(1 for _ in cut_windows(docs, tokenizer, c.window_tokens, c.max_windows))


def sampled_positions(first: int, n_windows: int, width: int, stride: int) -> torch.Tensor | None:
    """Boolean [n_windows, width] mask of the positions read in windows ``first`` ... of the
    corpus: position p of window w when (p + w) % stride == 0, so the offset turns with each
    window; None when every position is read."""
    if stride == 1:
        return None
    w = torch.arange(first, first + n_windows)[:, None]
    return (torch.arange(width)[None, :] + w) % stride == 0


def site_activations(
    subject: LoadedSubject, batch: list[RawWindow], keep: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Per compared site of ``subject``: float32 [positions, width] on ``batch``, the framing
    tokens dropped, at the window positions where ``keep`` [windows, tokens] is true (all when
    None); the forward pass stops after the last site."""
    model = subject.model
    ids = subject.frame.wrap(batch).to(model.device)
    with (
        torch.inference_mode(),
        capture_many(subject.sites, [None] * len(subject.sites)) as captured,
        contextlib.suppress(StopForward),
    ):
        model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))
    start, width = len(subject.frame.prefix), len(batch[0].token_ids)
    if keep is None:
        return [t[:, start : start + width].reshape(-1, t.shape[-1]) for t in captured]
    return [t[:, start : start + width][keep] for t in captured]
