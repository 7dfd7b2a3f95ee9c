"""After the pass: deal every unit's kept windows into splits and build the records, batched.

Dealing needs only which windows a unit may use and which repeat each other, so it runs on
integers: each kept window gets a content id (windows with the same tokens share one, main and
out-of-distribution corpus alike), and a unit's candidates are lists of content ids. The result
is the same as ``splits.assign_unit`` on the same candidates (a unit test holds them equal).
The activations of every placed window are then gathered from the selections' tensors in a few
indexing operations and converted to Python floats once per chunk of units; no tensor work is
done per unit or per window.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import torch

from neuroscribe.collect.select import RandomSample, RunningStats, quantiles
from neuroscribe.collect.splits import random_quotas, split_sequence, top_quotas
from neuroscribe.collect.state import CorpusPass
from neuroscribe.collect.windows import TokenDecoder
from neuroscribe.config import CollectConfig
from neuroscribe.records import Split, UnitExamples, UnitId, UnitStats, Window

CHUNK = 1024
"""Units whose activations are gathered and converted to Python floats at once."""

TOP, QUANTILE, RANDOM, OOD = 0, 1, 2, 3


def take_new(keys: Sequence[Hashable], used: set[Hashable], n: int) -> list[int]:
    """Positions of the first ``n`` keys not yet in ``used``; each taken key joins ``used``."""
    taken: list[int] = []
    if n <= 0:
        return taken
    for pos, key in enumerate(keys):
        if key in used:
            continue
        used.add(key)
        taken.append(pos)
        if len(taken) == n:
            break
    return taken


@dataclass(frozen=True)
class Candidates:
    """One unit's candidates as content ids, in the order they are dealt."""

    top: Sequence[int]
    """By rank, best first."""
    quantile: Sequence[Sequence[int]]
    """Per bin, highest bin first; each in key order."""
    random: Sequence[int]
    ood: Sequence[int]


class Dealer:
    """Deals one unit's candidates: the same choice and order as ``splits.assign_unit`` (top by
    rank round-robin, quantile bins, random, then OOD windows, passing over any window whose
    content the unit already uses)."""

    def __init__(self, cfg: CollectConfig) -> None:
        self.top_splits = split_sequence(top_quotas(cfg))
        self.random_splits = split_sequence(random_quotas(cfg))
        self.n_quantile = cfg.n_quantile
        self.n_ood = cfg.n_random

    def __call__(self, c: Candidates) -> list[tuple[int, int, int, Split]]:
        """Placed windows as (kind, bin, position in its candidate list, split)."""
        used: set[Hashable] = set()
        taken = take_new(c.top, used, len(self.top_splits))
        placed = [(TOP, 0, p, s) for p, s in zip(taken, self.top_splits, strict=False)]
        for b, keys in enumerate(c.quantile):
            placed += [
                (QUANTILE, b, p, Split.EXPLAIN) for p in take_new(keys, used, self.n_quantile)
            ]
        taken = take_new(c.random, used, len(self.random_splits))
        placed += [(RANDOM, 0, p, s) for p, s in zip(taken, self.random_splits, strict=False)]
        placed += [(OOD, 0, p, Split.SCORE_OOD) for p in take_new(c.ood, used, self.n_ood)]
        return placed


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: the records are hundreds of thousands of new
    objects, none of them garbage, and every collection while they are built would walk them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def assemble(
    cfg: CollectConfig,
    columns: Sequence[tuple[str, int]],
    unit_id: Callable[[str, int], UnitId],
    state: tuple[CorpusPass, CorpusPass, RandomSample, RunningStats],
    decoder: TokenDecoder,
    corpus_ids: tuple[str, str],
) -> tuple[tuple[Window, ...], tuple[UnitExamples, ...]]:
    """The used windows (main corpus first, each in corpus order) and every unit's records.

    ``unit_id(site, index)`` makes a unit's id; ``state`` is (main pass, OOD pass, token sample,
    statistics).
    """
    main, ood, tokens, stats = state
    top, qsample = main.top, main.quantile
    assert top is not None
    content: dict[tuple[int, ...], int] = {}
    main_ids, ood_ids = (
        {i: content.setdefault(w.token_ids, len(content)) for i, w in p.store.items()}
        for p in (main, ood)
    )
    top_index = top.index.tolist()
    sample_index = main.sample.index.tolist()
    ood_index = ood.sample.index.tolist()
    sample_keys = [main_ids[i] for i in sample_index]
    ood_keys = [ood_ids[i] for i in ood_index]
    n_bins = qsample.bins if qsample is not None and cfg.n_quantile else 0
    q_slot: list = []
    q_index: list = []
    if n_bins:
        # Every kept window of a bin, in key order: the first n_quantile that the unit does
        # not already use (as a top window, or the same text) are dealt.
        slot_t, index_t = qsample.chosen(qsample.slots)  # type: ignore[union-attr]
        q_slot, q_index = slot_t.tolist(), index_t.tolist()
    dead = (stats.max <= cfg.firing_threshold).tolist()

    deal = Dealer(cfg)
    # Deal every unit on integers; each placed window: (kind, gather coordinates, source,
    # corpus index, split, rank).
    plans: list[list[tuple[int, tuple[int, ...], int, int, Split, int]]] = []
    for u in range(len(columns)):
        plan: list[tuple[int, tuple[int, ...], int, int, Split, int]] = []
        plans.append(plan)
        if dead[u]:
            continue
        bins = [  # highest bin first: (bin, slot, corpus index) of its chosen windows
            [(j, s, i) for s, i in zip(q_slot[u][j], q_index[u][j], strict=True) if i >= 0]
            for j in reversed(range(n_bins))
        ]
        cands = Candidates(
            [main_ids[i] for i in top_index[u]],
            [[main_ids[i] for _, _, i in b] for b in bins],
            sample_keys,
            ood_keys,
        )
        for kind, b, pos, split in deal(cands):
            if kind == TOP:
                plan.append((TOP, (u, pos), 0, top_index[u][pos], split, pos))
            elif kind == QUANTILE:
                j, s, i = bins[b][pos]
                plan.append((QUANTILE, (u, j, s), 0, i, split, -2 - b))
            elif kind == RANDOM:
                plan.append((RANDOM, (pos, u), 0, sample_index[pos], split, -1))
            else:
                plan.append((OOD, (pos, u), 1, ood_index[pos], split, -1))

    used = sorted({(source, i) for plan in plans for _, _, source, i, _, _ in plan})
    windows = {
        (source, i): decoder.window(corpus_ids[source], (main, ood)[source].store[i])
        for source, i in used
    }
    maxes, means, rates = stats.max.tolist(), stats.mean.tolist(), stats.firing_rate.tolist()
    unit_quantiles = quantiles(tokens.kept_rows(), list(cfg.quantiles)).t().tolist()
    gatherers: dict[int, Callable[..., torch.Tensor]] = {
        TOP: top.acts_at,
        RANDOM: main.sample.rows_at,
        OOD: ood.sample.rows_at,
    }
    if qsample is not None:
        gatherers[QUANTILE] = qsample.acts_at
    units: list[UnitExamples] = []
    for lo in range(0, len(columns), CHUNK):
        chunk = plans[lo : lo + CHUNK]
        acts = _activations(chunk, gatherers)
        for u, plan in enumerate(chunk, start=lo):
            placed = [
                {
                    "window_id": windows[source, i].window_id,
                    "split": split,
                    "rank": rank,
                    "activations": next(acts[kind]),
                }
                for kind, _, source, i, split, rank in plan
            ]
            unit_stats = UnitStats(
                n_tokens=stats.n_tokens,
                max=maxes[u],
                mean=means[u],
                firing_rate=rates[u],
                quantiles=tuple(unit_quantiles[u]),
                dead=bool(dead[u]),
            )
            # One validation per unit builds its windows' records (faster than one each).
            units.append(
                UnitExamples.model_validate(
                    {"unit": unit_id(*columns[u]), "stats": unit_stats, "windows": placed}
                )
            )
    return tuple(windows[key] for key in used), tuple(units)


def _activations(
    plans: Sequence[Sequence[tuple[int, tuple[int, ...], int, int, Split, int]]],
    gatherers: dict[int, Callable[..., torch.Tensor]],
) -> dict[int, Iterator[tuple[float, ...]]]:
    """Per kind, the activations of the placed windows of that kind, in the plans' order: one
    gather and one conversion to Python floats per kind."""
    coords: dict[int, list[tuple[int, ...]]] = {kind: [] for kind in gatherers}
    for plan in plans:
        for kind, at, *_ in plan:
            coords[kind].append(at)
    out: dict[int, Iterator[tuple[float, ...]]] = {}
    for kind, points in coords.items():
        if not points:
            out[kind] = iter(())
            continue
        columns = torch.tensor(points, dtype=torch.long).t()
        out[kind] = map(tuple, gatherers[kind](*columns).tolist())
    return out
