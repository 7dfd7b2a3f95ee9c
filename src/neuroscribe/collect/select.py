"""Streaming selection: memory bounded by units × kept examples, never by the corpus.

Each batch arrives as a float32 tensor ``acts[batch, pos, unit]`` with the corpus-order index of
every window. All updates are tensor operations over all units at once (no Python loop over units):

- ``TopWindows``: per unit, the k windows with the largest max activation.
- ``RandomSample``: a uniform random sample without replacement of rows (windows or tokens), kept
  as the rows with the smallest seeded random keys ("bottom-k" sampling), so a sample of a stream
  is the same as the sample of the whole.
- ``RunningStats``: token count, sum, max and firing count per unit.
"""

from __future__ import annotations

import torch


class TopWindows:
    """Per unit, the ``k`` windows with the largest max activation, best first.

    Merging sorts [kept, batch] with a stable sort rather than ``torch.topk``, whose order among
    equal values is unspecified: with a stable sort a tie goes to the earlier window, which makes
    the result independent of the batch size.
    """

    def __init__(self, k: int, n_units: int, window_tokens: int) -> None:
        self.k = k
        self.score = torch.empty(n_units, 0)
        """[unit, rank] max activation of each kept window."""
        self.index = torch.empty(n_units, 0, dtype=torch.long)
        """[unit, rank] corpus-order index of each kept window."""
        self.acts = torch.empty(n_units, 0, window_tokens)
        """[unit, rank, pos] the unit's activations on each kept window."""

    def update(self, acts: torch.Tensor, window_index: torch.Tensor) -> None:
        per_unit = acts.permute(2, 0, 1)  # [unit, batch, pos]
        n_units, n_batch, n_pos = per_unit.shape
        score = torch.cat([self.score, per_unit.amax(dim=-1)], dim=1)
        order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, : self.k]
        index = torch.cat([self.index, window_index.expand(n_units, n_batch)], dim=1)
        self.score = score.gather(1, order)
        self.index = index.gather(1, order)
        self.acts = torch.cat([self.acts, per_unit], dim=1).gather(
            1, order.unsqueeze(-1).expand(-1, -1, n_pos)
        )


class RandomSample:
    """A seeded uniform sample of at most ``capacity`` rows of a stream (bottom-k by random key).

    ``rows`` keeps, for each sampled row, whatever tensor the caller passes (a window's
    activations [pos, unit], or one token's activations [unit]); ``index`` its stream index.
    """

    def __init__(self, capacity: int, seed: int, row_shape: tuple[int, ...]) -> None:
        self.capacity = capacity
        self._generator = torch.Generator().manual_seed(seed)
        self.keys = torch.empty(0)
        self.index = torch.empty(0, dtype=torch.long)
        self.rows = torch.empty(0, *row_shape)

    def update(self, rows: torch.Tensor, index: torch.Tensor) -> None:
        keys = torch.rand(rows.shape[0], generator=self._generator)
        if len(self.keys) >= self.capacity:
            # Full: only rows whose key beats the largest kept key can enter. Usually few, so
            # filter first instead of copying the whole sample every batch.
            enter = keys < self.keys.max()
            if not bool(enter.any()):
                return
            keys, rows, index = keys[enter], rows[enter], index[enter]
        all_keys = torch.cat([self.keys, keys])
        keep = torch.sort(all_keys, stable=True).indices[: self.capacity]
        self.keys = all_keys[keep]
        self.index = torch.cat([self.index, index])[keep]
        self.rows = torch.cat([self.rows, rows])[keep]

    def __len__(self) -> int:
        return len(self.keys)


class RunningStats:
    """Exact per-unit token count, mean, max and firing count over the stream."""

    def __init__(self, n_units: int, firing_threshold: float) -> None:
        self.threshold = firing_threshold
        self.n_tokens = 0
        self.sum = torch.zeros(n_units, dtype=torch.float64)
        self.max = torch.full((n_units,), float("-inf"))
        self.n_firing = torch.zeros(n_units, dtype=torch.long)

    def update(self, acts: torch.Tensor) -> None:
        flat = acts.reshape(-1, acts.shape[-1])  # [token, unit]
        self.n_tokens += flat.shape[0]
        self.sum += flat.double().sum(dim=0)
        self.max = torch.maximum(self.max, flat.amax(dim=0))
        self.n_firing += (flat > self.threshold).sum(dim=0)

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / max(self.n_tokens, 1)

    @property
    def firing_rate(self) -> torch.Tensor:
        return self.n_firing.double() / max(self.n_tokens, 1)


def quantiles(sample: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """[len(qs), unit] quantiles of ``sample[row, unit]`` with linear interpolation (numpy's
    default). ``torch.quantile`` refuses inputs above 16M elements; this sorts instead."""
    if sample.shape[0] == 0:
        return torch.zeros(len(qs), sample.shape[1])
    ordered = sample.sort(dim=0).values
    n = ordered.shape[0]
    pos = torch.tensor(qs, dtype=torch.float64) * (n - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = (pos - lo).float().unsqueeze(1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def token_sample_capacity(n_units: int, budget: int = 1 << 23) -> int:
    """Tokens kept for quantiles: a float budget shared by the units, within [4096, 100000].

    Quantiles are exact while the corpus has no more tokens than this, and estimated from a
    uniform token sample beyond (so the top quantiles, e.g. 0.999, are rough on big corpora).
    """
    return max(4096, min(100_000, budget // max(n_units, 1)))
