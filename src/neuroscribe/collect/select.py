"""Streaming selection: memory bounded by units × kept examples, never by the corpus.

Each batch arrives as a float32 tensor ``acts[batch, pos, unit]`` with the corpus-order index of
every window. All updates are tensor operations over all units at once (no Python loop over units):

- ``TopWindows``: per unit, the k windows with the largest max activation.
- ``RandomSample``: a uniform random sample without replacement of rows (windows or tokens), kept
  as the rows with the smallest seeded random keys ("bottom-k" sampling), so a sample of a stream
  is the same as the sample of the whole.
- ``RunningStats``: token count, sum, max and firing count per unit.

The state lives in preallocated tensors updated in place: on a CPU, fresh multi-megabyte tensors
every batch cost more in page faults than the arithmetic.
"""

from __future__ import annotations

import torch


class TopWindows:
    """Per unit, the ``k`` windows with the largest max activation, best first.

    Order: larger max activation first, and among equal values the earlier window, which makes
    the result independent of the batch size. Kept windows live in fixed slots; once they are
    filled, a batch only looks at the windows above a unit's worst kept value (usually none),
    and copies only the windows that enter, so the cost per batch is one comparison of the
    per-unit maxima, not a re-sort of everything kept.
    """

    def __init__(self, k: int, n_units: int, window_tokens: int) -> None:
        self.k = k
        self.n_filled = 0
        self._score = torch.full((n_units, k), float("-inf"))
        self._index = torch.full((n_units, k), -1, dtype=torch.long)
        self._acts = torch.zeros(n_units, k, window_tokens)
        self._order: torch.Tensor | None = None
        self._floor = torch.full((n_units,), float("-inf"))
        """Each unit's worst kept value once all k slots are filled."""
        self._key = torch.empty(0, dtype=torch.long)
        """The kept windows' ``_order_keys`` once all k slots are filled."""

    def update(
        self, acts: torch.Tensor, window_index: torch.Tensor, best: torch.Tensor | None = None
    ) -> None:
        """Offer a batch: ``acts[batch, pos, unit]``, ``window_index[batch]`` increasing, and
        ``best[unit, batch]`` the window maxima when the caller has them."""
        n_batch = acts.shape[0]
        if best is None:
            best = acts.amax(dim=1).t().contiguous()  # [unit, batch]
        fill = min(self.k - self.n_filled, n_batch)
        if fill > 0:  # the first k windows are kept whatever they are
            kept = slice(self.n_filled, self.n_filled + fill)
            self._score[:, kept] = best[:, :fill]
            self._index[:, kept] = window_index[:fill]
            self._acts[:, kept] = acts[:fill].permute(2, 0, 1)
            self.n_filled += fill
            self._order = None
            if self.n_filled == self.k:
                self._full()
        if fill < n_batch:
            self._merge(best[:, fill:], window_index[fill:], acts[fill:])

    def _merge(self, best: torch.Tensor, window_index: torch.Tensor, acts: torch.Tensor) -> None:
        # Only a window strictly above a unit's worst kept value can enter (ties go to the
        # earlier, kept window), so only units with such a window are merged, on keys that
        # order (value descending, corpus index ascending) as one integer each.
        rows = (best.amax(dim=1) > self._floor).nonzero()[:, 0]
        if rows.numel() == 0:
            return
        k, best_rows = self.k, best[rows]
        entering = torch.where(
            best_rows > self._floor[rows].unsqueeze(1),
            _order_keys(best_rows, window_index),
            torch.iinfo(torch.long).min,
        )
        keys = torch.cat([self._key[rows], entering], dim=1)
        keep = torch.zeros(keys.shape, dtype=torch.bool)
        keep.scatter_(1, keys.topk(k, dim=1, sorted=False).indices, True)
        # Per row as many slots are freed as batch windows enter; nonzero lists both row by
        # row, so the i-th freed slot and the i-th entering window belong to the same unit.
        row, slot = (~keep[:, :k]).nonzero(as_tuple=True)
        src = keep[:, k:].nonzero()[:, 1]
        unit = rows[row]
        self._score[unit, slot] = best[unit, src]
        self._index[unit, slot] = window_index[src]
        self._key[unit, slot] = entering[row, src]
        self._acts[unit, slot] = acts[src, :, unit]
        self._floor[rows] = self._score[rows].amin(dim=1)
        self._order = None

    def _ranked(self) -> torch.Tensor:
        if self._order is None:
            n = self.n_filled
            self._order = _rank(self._score[:, :n], self._index[:, :n])
        return self._order

    @property
    def score(self) -> torch.Tensor:
        """[unit, rank] max activation of each kept window."""
        return self._score[:, : self.n_filled].gather(1, self._ranked())

    @property
    def index(self) -> torch.Tensor:
        """[unit, rank] corpus-order index of each kept window."""
        return self._index[:, : self.n_filled].gather(1, self._ranked())

    @property
    def acts(self) -> torch.Tensor:
        """[unit, rank, pos] the unit's activations on each kept window."""
        order = self._ranked().unsqueeze(-1).expand(-1, -1, self._acts.shape[-1])
        return self._acts[:, : self.n_filled].gather(1, order)

    def kept_windows(self) -> torch.Tensor:
        """Corpus indices of every window some unit keeps (unsorted, repeats possible)."""
        return self._index[:, : self.n_filled].reshape(-1)

    def acts_at(self, unit: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
        """[n, pos] the activations of unit ``unit[i]``'s window of rank ``rank[i]``."""
        return self._acts[unit, self._ranked()[unit, rank]]

    def state_dict(self) -> dict[str, object]:
        return {
            "n_filled": self.n_filled,
            "score": self._score,
            "index": self._index,
            "acts": self._acts,
        }

    def load_state_dict(self, state: dict) -> None:
        self.n_filled = int(state["n_filled"])
        self._score, self._index, self._acts = state["score"], state["index"], state["acts"]
        self._order = None
        if self.n_filled == self.k:
            self._full()
        else:
            self._floor = torch.full((self._score.shape[0],), float("-inf"))

    def _full(self) -> None:
        """Every slot is filled: from now on, windows enter only by beating a kept one."""
        self._key = _order_keys(self._score, self._index)
        self._floor = self._score.amin(dim=1)


def _order_keys(score: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """One int64 per (value, corpus index) that orders as value descending, then index
    ascending: the value's float32 bits made order-preserving (-0.0 counted as 0.0) in the high
    32 bits, the complement of the index in the low 32."""
    bits = (score + 0.0).view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()
    return ordered * (1 << 32) + ((1 << 32) - 1 - index)


def _rank(score: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per row, positions ordered by score descending, ties by index ascending."""
    by_index = index.argsort(dim=1, stable=True)
    by_score = score.gather(1, by_index).argsort(dim=1, descending=True, stable=True)
    return by_index.gather(1, by_score)


class RandomSample:
    """A seeded uniform sample of at most ``capacity`` rows of a stream (bottom-k by random key).

    ``rows`` keeps, for each sampled row, whatever tensor the caller passes (a window's
    activations [pos, unit], or one token's activations [unit]); ``index`` its stream index;
    all three in key order. Rows live in fixed slots: once the sample is full, a batch copies only
    the few rows whose key beats the largest kept key, never the whole sample.
    """

    def __init__(self, capacity: int, seed: int, row_shape: tuple[int, ...]) -> None:
        self.capacity = capacity
        self.row_shape = row_shape
        self.n = 0
        self._generator = torch.Generator().manual_seed(seed)
        self._keys = torch.empty(0)
        self._index = torch.empty(0, dtype=torch.long)
        self._rows = torch.empty(0, *row_shape)

    def update(self, rows: torch.Tensor, index: torch.Tensor) -> None:
        keys = torch.rand(rows.shape[0], generator=self._generator)
        if self._rows.shape[0] == 0:  # allocated on first use: an unused sample costs nothing
            self._keys = torch.full((self.capacity,), float("inf"))
            self._index = torch.full((self.capacity,), -1, dtype=torch.long)
            self._rows = torch.zeros(self.capacity, *self.row_shape)
        fill = min(self.capacity - self.n, rows.shape[0])
        if fill > 0:
            kept = slice(self.n, self.n + fill)
            self._keys[kept], self._index[kept], self._rows[kept] = (
                keys[:fill],
                index[:fill],
                rows[:fill],
            )
            self.n += fill
        if fill == rows.shape[0]:
            return
        keys, index = keys[fill:], index[fill:]
        # Full: only rows whose key beats the largest kept key can enter. Usually few.
        enter = (keys < self._keys.max()).nonzero()[:, 0]
        if enter.numel() == 0:
            return
        # As many rows leave as enter: the largest keys of kept and entering rows, among equal
        # keys the later (a stable sort keeps the earlier). One int64 per key orders them: the
        # key's float bits (keys are non-negative, so their bits order as integers) over its
        # position; ``topk`` finds the few that leave without sorting the whole sample.
        all_keys = torch.cat([self._keys, keys[enter]])
        order = all_keys.view(torch.int32).long() * (1 << 32) + torch.arange(len(all_keys))
        leave = torch.zeros(len(all_keys), dtype=torch.bool)
        leave[order.topk(len(enter), sorted=False).indices] = True
        freed = leave[: self.capacity].nonzero()[:, 0]
        src = enter[(~leave[self.capacity :]).nonzero()[:, 0]]
        self._keys[freed] = keys[src]
        self._index[freed] = index[src]
        self._rows.index_copy_(0, freed, rows[fill:].index_select(0, src))

    def _order(self) -> torch.Tensor:
        return torch.sort(self._keys[: self.n], stable=True).indices

    @property
    def keys(self) -> torch.Tensor:
        return self._keys[: self.n][self._order()]

    @property
    def index(self) -> torch.Tensor:
        return self._index[: self.n][self._order()]

    @property
    def rows(self) -> torch.Tensor:
        if self.n == 0:
            return torch.empty(0, *self.row_shape)
        return self._rows[: self.n][self._order()]

    def kept_index(self) -> torch.Tensor:
        """Stream indices of the sampled rows, unordered (cheap)."""
        return self._index[: self.n]

    def kept_rows(self) -> torch.Tensor:
        """The sampled rows, unordered (no copy)."""
        return self._rows[: self.n] if self.n else torch.empty(0, *self.row_shape)

    def rows_at(self, position: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
        """``rows[position[i], ..., column[i]]`` for window rows ``[pos, unit]``: [n, pos]."""
        return self._rows[self._order()[position], :, column]

    def __len__(self) -> int:
        return self.n

    def state_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "keys": self._keys,
            "index": self._index,
            "rows": self._rows,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.n = int(state["n"])
        self._keys, self._index, self._rows = state["keys"], state["index"], state["rows"]
        self._generator.set_state(state["generator"])


class RunningStats:
    """Per-unit token count, mean, max and firing count over the stream.

    Count, max and firing count are exact; sums are taken in float32 per batch and accumulated in
    float64 (relative error about 1e-7), which keeps the per-batch cost to a few passes over the
    activations.
    """

    def __init__(self, n_units: int, firing_threshold: float) -> None:
        self.threshold = firing_threshold
        self.n_tokens = 0
        self.sum = torch.zeros(n_units, dtype=torch.float64)
        self.max = torch.full((n_units,), float("-inf"))
        self.n_firing = torch.zeros(n_units, dtype=torch.long)
        self._firing = torch.empty(0)  # reused: no fresh pages every batch
        self._ones = torch.empty(0)

    def update(self, acts: torch.Tensor, best: torch.Tensor | None = None) -> None:
        """Add ``acts[batch, pos, unit]``; ``best[unit, batch]`` its window maxima, if known."""
        flat = acts.reshape(-1, acts.shape[-1])  # [token, unit]
        self.n_tokens += flat.shape[0]
        self.sum += flat.sum(dim=0)
        batch_max = flat.amax(dim=0) if best is None else best.amax(dim=1)
        self.max = torch.maximum(self.max, batch_max)
        # Firing count: 1.0 where above the threshold, summed by a matrix product (exact: at
        # most 2^24 tokens a batch). Several times faster than a boolean mask's integer sum.
        if self._firing.shape != flat.shape:
            self._firing = torch.empty(flat.shape)
            self._ones = torch.ones(1, flat.shape[0])
        torch.gt(flat, self.threshold, out=self._firing)
        self.n_firing += (self._ones @ self._firing)[0].long()

    def state_dict(self) -> dict[str, object]:
        return {
            "n_tokens": self.n_tokens,
            "sum": self.sum,
            "max": self.max,
            "n_firing": self.n_firing,
        }

    def load_state_dict(self, state: dict) -> None:
        self.n_tokens = int(state["n_tokens"])
        self.sum, self.max, self.n_firing = state["sum"], state["max"], state["n_firing"]

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / max(self.n_tokens, 1)

    @property
    def firing_rate(self) -> torch.Tensor:
        return self.n_firing.double() / max(self.n_tokens, 1)


def quantiles(sample: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """[len(qs), unit] quantiles of ``sample[row, unit]`` with linear interpolation (numpy's
    default), the rows in any order. Only the order statistics needed are found (a partial
    sort per unit, ``numpy.partition``): exact, and several times faster than sorting."""
    if sample.shape[0] == 0:
        return torch.zeros(len(qs), sample.shape[1])
    n = sample.shape[0]
    pos = torch.tensor(qs, dtype=torch.float64) * (n - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    kth = sorted(set(lo.tolist()) | set(hi.tolist()))
    # [unit, row]: each unit's values contiguous, always a copy (``contiguous`` returns the
    # sample itself for one unit or one row), so partitioning it in place leaves the sample be
    by_unit = sample.t().numpy().copy()
    by_unit.partition(kth, axis=1)
    ordered = torch.from_numpy(by_unit).t()  # [row, unit]
    frac = (pos - lo).float().unsqueeze(1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def token_sample_capacity(n_units: int, budget: int = 1 << 23) -> int:
    """Tokens kept for quantiles: a float budget shared by the units, within [4096, 100000].

    Quantiles are exact while the corpus has no more tokens than this, and estimated from a
    uniform token sample beyond (so the top quantiles, e.g. 0.999, are rough on big corpora).
    """
    return max(4096, min(100_000, budget // max(n_units, 1)))
