"""After the pass: deal every unit's kept windows into splits and build the records' tables.

Dealing needs only which windows a unit may use and which repeat each other, so it runs on
integers: each kept window gets a content id (windows with the same tokens share one, main and
out-of-distribution corpus alike), and a unit's candidates are rows of content ids, dealt for
every unit at once with tensor operations (``deal``). The result is the same as
``splits.assign_unit`` on the same candidates (a unit test holds them equal). The activations of
every placed window are then gathered from the selections' tensors in a few indexing operations
into one Arrow table, in the warehouse's columns; no Python object is made per unit's window
(a catalogue has hundreds of thousands, and its records are built only when asked for). The
token quantiles are computed in a thread meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from neuroscribe.collect.select import RandomSample, RunningStats, quantiles
from neuroscribe.collect.splits import random_quotas, split_sequence, top_quotas
from neuroscribe.collect.state import CorpusPass
from neuroscribe.collect.windows import TokenDecoder
from neuroscribe.config import CollectConfig
from neuroscribe.records import Split, UnitId, Window
from neuroscribe.warehouse.columnar import UnitTables

UNITS_SCHEMA = pa.schema(
    [
        ("unit_key", pa.string()),
        ("subject_id", pa.string()),
        ("site", pa.string()),
        ("index", pa.int64()),
        ("sae_id", pa.string()),
        ("n_tokens", pa.int64()),
        ("max", pa.float64()),
        ("mean", pa.float64()),
        ("firing_rate", pa.float64()),
        ("quantiles", pa.list_(pa.float64())),
        ("dead", pa.bool_()),
    ]
)
UNIT_WINDOWS_SCHEMA = pa.schema(
    [
        ("unit_key", pa.string()),
        ("window_id", pa.string()),
        ("split", pa.string()),
        ("rank", pa.int64()),
        ("activations", pa.list_(pa.float32())),
    ]
)
"""The columns of the tables collection yields (``CollectResult.tables``)."""

CHUNK = 1024
"""Units whose token quantiles are computed at once."""

TOP, QUANTILE, RANDOM, OOD = 0, 1, 2, 3
SPLITS = list(Split)


@dataclass(frozen=True)
class Dealt:
    """What ``deal`` chose for every unit: ``taken[unit, column]`` over the candidate columns
    ``[top | quantile bins, highest first | random | ood]``, and each taken column's split as an
    index into ``SPLITS``. Row-major order of the taken columns is the order of dealing."""

    taken: torch.Tensor
    split: torch.Tensor
    n_top: int
    n_slots: int
    n_bins: int
    n_random: int

    def kind(self, column: torch.Tensor) -> torch.Tensor:
        """TOP, QUANTILE, RANDOM or OOD of each column."""
        edges = torch.tensor(
            [self.n_top, self.n_top + self.n_bins * self.n_slots, self._ood_start()]
        )
        return torch.bucketize(column, edges, right=True)

    def position(self, column: torch.Tensor) -> torch.Tensor:
        """Each column's position in its own candidate list (a bin's, for quantile windows)."""
        start = torch.tensor([0, self.n_top, self.n_top + self.n_bins * self.n_slots])
        start = torch.cat([start, torch.tensor([self._ood_start()])])
        pos = column - start[self.kind(column)]
        return torch.where(self.kind(column) == QUANTILE, pos % max(self.n_slots, 1), pos)

    def _ood_start(self) -> int:
        return self.n_top + self.n_bins * self.n_slots + self.n_random


def deal(
    cfg: CollectConfig,
    top: torch.Tensor,
    bins: torch.Tensor,
    random: torch.Tensor,
    ood: torch.Tensor,
    alive: torch.Tensor | None = None,
) -> Dealt:
    """Deal every unit's candidates at once: the same choice and order as
    ``splits.assign_unit`` (top by rank round-robin, the quantile bins, random, then OOD
    windows, passing over any window whose content the unit already uses).

    ``top[unit, rank]`` and ``bins[unit, bin (highest first), slot]`` are content ids, -1 where
    there is none; ``random`` and ``ood`` are shared by every unit. Units where ``alive`` is
    False are dealt nothing."""
    n_units = top.shape[0]
    top_splits = split_sequence(top_quotas(cfg))
    random_splits = split_sequence(random_quotas(cfg))
    used = torch.empty(n_units, 0, dtype=torch.long)
    taken: list[torch.Tensor] = []
    splits: list[torch.Tensor] = []

    def take(cands: torch.Tensor, n: int, split_order: list[Split]) -> None:
        nonlocal used
        got = _take(cands, used, n)
        order = (got.cumsum(dim=1) - 1).clamp_(min=0)
        codes = torch.tensor([SPLITS.index(s) for s in split_order] or [0])
        taken.append(got)
        splits.append(codes[order.clamp(max=len(codes) - 1)])
        used = torch.cat([used, torch.where(got, cands, -1)], dim=1)

    take(top, len(top_splits), top_splits)
    for b in range(bins.shape[1]):
        take(bins[:, b], cfg.n_quantile, [Split.EXPLAIN] * cfg.n_quantile)
    take(random.unsqueeze(0), len(random_splits), random_splits)
    take(ood.unsqueeze(0), cfg.n_random, [Split.SCORE_OOD] * cfg.n_random)
    got = torch.cat(taken, dim=1)
    if alive is not None:
        got &= alive.unsqueeze(1)
    return Dealt(
        got, torch.cat(splits, dim=1), top.shape[1], bins.shape[2], bins.shape[1], len(random)
    )


def _take(cands: torch.Tensor, used: torch.Tensor, n: int) -> torch.Tensor:
    """Per row of ``used``, the first ``n`` valid candidates whose content is neither in the
    row of ``used`` nor repeats an earlier candidate (``cands``: one row per unit, or one row
    shared by all)."""
    shape = (used.shape[0], cands.shape[1])
    if n <= 0 or cands.shape[1] == 0:
        return torch.zeros(shape, dtype=torch.bool)
    valid = cands >= 0
    repeat = (cands.unsqueeze(2) == cands.unsqueeze(1)).tril(diagonal=-1).any(dim=2)
    free = (valid & ~repeat).expand(shape)
    if used.shape[1]:
        free = free & ~(cands.unsqueeze(2) == used.unsqueeze(1)).any(dim=2)
    return free & (free.cumsum(dim=1) <= n)


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
) -> tuple[tuple[Window, ...], UnitTables]:
    """The used windows (main corpus first, each in corpus order) and every unit's record as
    Arrow tables (``units`` in the order of ``columns``; ``unit_windows`` unit by unit, each
    unit's windows in dealing order), from which ``columnar.unit_records`` builds the records.

    ``unit_id(site, index)`` makes a unit's id; ``state`` is (main pass, OOD pass, token sample,
    statistics).
    """
    main, ood, tokens, stats = state
    # The quantiles (a partial sort of every unit's token sample, in numpy, which releases the
    # GIL) are computed in a thread, a chunk of units at a time, while the units are dealt.
    sample, qs = tokens.kept_rows(), list(cfg.quantiles)

    def chunk_quantiles(lo: int) -> torch.Tensor:
        return quantiles(sample[:, lo : lo + CHUNK], qs).t()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="quantiles") as pool:
        unit_quantiles = [pool.submit(chunk_quantiles, lo) for lo in range(0, len(columns), CHUNK)]
        placed = _placed(cfg, main, ood, stats)
        # The used windows, main corpus first, each in corpus order; each placed window's number.
        key = placed.source * (1 << 48) + placed.index
        used, number = torch.unique(key, sorted=True, return_inverse=True)
        used_windows = [
            decoder.window(corpus_ids[s], (main, ood)[s].store[i])
            for s, i in zip((used >> 48).tolist(), (used & ((1 << 48) - 1)).tolist(), strict=True)
        ]
        quantile_rows = torch.cat([q.result() for q in unit_quantiles]) if columns else None
    ids = [unit_id(site, index) for site, index in columns]
    keys = pa.array([u.key for u in ids], pa.string())
    dead = stats.max <= cfg.firing_threshold
    units = pa.table(
        {
            "unit_key": keys,
            "subject_id": pa.array([u.subject_id for u in ids], pa.string()),
            "site": pa.array([u.site for u in ids], pa.string()),
            "index": pa.array([u.index for u in ids], pa.int64()),
            "sae_id": pa.array([u.sae_id for u in ids], pa.string()),
            "n_tokens": pa.array(np.full(len(ids), stats.n_tokens, dtype=np.int64)),
            "max": pa.array(stats.max.double().numpy()),
            "mean": pa.array(stats.mean.double().numpy()),
            "firing_rate": pa.array(stats.firing_rate.double().numpy()),
            "quantiles": _lists(
                quantile_rows.double() if quantile_rows is not None else torch.zeros(0, len(qs))
            ),
            "dead": pa.array(dead.numpy()),
        },
        schema=UNITS_SCHEMA,
    )
    unit_windows = pa.table(
        {
            "unit_key": keys.take(pa.array(placed.unit.numpy())),
            "window_id": pa.array([w.window_id for w in used_windows], pa.string()).take(
                pa.array(number.numpy())
            ),
            "split": pa.array([s.value for s in SPLITS], pa.string()).take(
                pa.array(placed.split.numpy())
            ),
            "rank": pa.array(placed.rank.numpy()),
            "activations": _lists(placed.activations),
        },
        schema=UNIT_WINDOWS_SCHEMA,
    )
    return tuple(used_windows), UnitTables(units, unit_windows, EMPTY)


EMPTY = pa.table({})


def tables_from_rows(rows: dict[str, list[dict]]) -> UnitTables:
    """The tables of ``tables_to_rows``' rows (a ``CollectResult`` read back from JSON)."""
    return UnitTables(
        pa.Table.from_pylist(rows["units"], schema=UNITS_SCHEMA),
        pa.Table.from_pylist(rows["unit_windows"], schema=UNIT_WINDOWS_SCHEMA),
        EMPTY,
    )


def tables_to_rows(tables: UnitTables) -> dict[str, list[dict]]:
    return {"units": tables.units.to_pylist(), "unit_windows": tables.unit_windows.to_pylist()}


def _lists(rows: torch.Tensor, max_values: int = 2**31 - 1) -> pa.ChunkedArray:
    """An Arrow list per row of a 2-d tensor, in its dtype: chunks of rows holding at most
    ``max_values`` values each (a list array's offsets are 32-bit)."""
    n, width = rows.shape
    values = rows.contiguous().numpy()
    step = max(1, max_values // max(width, 1))
    parts = [
        pa.ListArray.from_arrays(
            pa.array(np.arange(0, (min(n, lo + step) - lo) * width + 1, width, dtype=np.int32)),
            pa.array(values[lo : lo + step].reshape(-1)),
        )
        for lo in range(0, n, step)
    ]
    return pa.chunked_array(parts, type=pa.list_(pa.from_numpy_dtype(values.dtype)))


@dataclass(frozen=True)
class Placed:
    """Every placed window of every unit, in dealing order (unit by unit)."""

    unit: torch.Tensor
    split: torch.Tensor
    """Index into ``SPLITS``."""
    rank: torch.Tensor
    source: torch.Tensor
    """0: the main corpus, 1: the out-of-distribution corpus."""
    index: torch.Tensor
    """Corpus-order index of the window in its corpus."""
    activations: torch.Tensor
    """[placed, pos] the unit's activations on the window."""


def _placed(cfg: CollectConfig, main: CorpusPass, ood: CorpusPass, stats: RunningStats) -> Placed:
    """Deal every unit on content ids, then gather what each placed window needs."""
    top, qsample = main.top, main.quantile
    assert top is not None
    top_index = top.index
    n_units = top_index.shape[0]
    content: dict[tuple[int, ...], int] = {}
    lookups = []
    for scan in (main, ood):
        index = torch.tensor(sorted(scan.store), dtype=torch.long)
        ids = [content.setdefault(scan.store[i].token_ids, len(content)) for i in index.tolist()]
        lookups.append((index, torch.tensor(ids, dtype=torch.long)))

    def content_ids(source: int, corpus_index: torch.Tensor) -> torch.Tensor:
        index, ids = lookups[source]
        if len(index) == 0:
            return torch.full_like(corpus_index, -1)
        found = torch.searchsorted(index, corpus_index).clamp_(max=len(index) - 1)
        return torch.where((index[found] == corpus_index) & (corpus_index >= 0), ids[found], -1)

    sample_index, ood_index = main.sample.index, ood.sample.index
    n_bins = qsample.bins if qsample is not None and cfg.n_quantile else 0
    if n_bins:
        # Every kept window of a bin, in key order (highest bin first): the first n_quantile
        # that the unit does not already use (as a top window, or the same text) are dealt.
        q_slot, q_index = (t.flip(1) for t in qsample.chosen(qsample.slots))  # type: ignore[union-attr]
    else:
        q_slot = q_index = torch.full((n_units, 0, 0), -1, dtype=torch.long)
    dealt = deal(
        cfg,
        content_ids(0, top_index),
        content_ids(0, q_index),
        content_ids(0, sample_index),
        content_ids(1, ood_index),
        alive=stats.max > cfg.firing_threshold,
    )
    unit, column = dealt.taken.nonzero(as_tuple=True)
    kind, pos = dealt.kind(column), dealt.position(column)
    rank = torch.full_like(column, -1)
    source = torch.zeros_like(column)
    index = torch.empty_like(column)
    acts = torch.empty(len(column), cfg.window_tokens)
    for k in (TOP, QUANTILE, RANDOM, OOD):
        at = (kind == k).nonzero()[:, 0]
        if len(at) == 0:
            continue
        u, p = unit[at], pos[at]
        if k == TOP:
            rank[at], index[at], acts[at] = p, top_index[u, p], top.acts_at(u, p)
        elif k == QUANTILE:
            b = (column[at] - dealt.n_top) // dealt.n_slots  # position among the bins
            j = n_bins - 1 - b  # the bin itself
            rank[at], index[at] = -2 - b, q_index[u, b, p]
            acts[at] = qsample.acts_at(u, j, q_slot[u, b, p])  # type: ignore[union-attr]
        elif k == RANDOM:
            index[at], acts[at] = sample_index[p], main.sample.rows_at(p, u)
        else:
            source[at], index[at], acts[at] = 1, ood_index[p], ood.sample.rows_at(p, u)
    return Placed(unit, dealt.split[unit, column], rank, source, index, acts)
