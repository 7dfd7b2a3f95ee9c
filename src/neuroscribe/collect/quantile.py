"""Windows sampled across bins of window max activation below the top, streaming.

The explainer sees a unit's top windows; examples from lower activation levels show it what the
unit does when it fires weakly (delphi samples explanation examples from activation quantiles).
Each window has one seeded random key, shared by all units. For every unit, ``QuantileSample``
keeps, per bin, the windows with the smallest keys: a random sample of the windows in the bin.

The exact rule. ``x`` is a window's max activation for the unit, ``M`` the unit's running max
over every window read so far, the window itself included (in corpus order, so the result does
not depend on the batch size), and ``B`` the number of bins.

- A window is offered to bin ``j = floor(B * x / M)`` (0 = lowest) when ``x > 0``,
  ``x > firing_threshold`` and ``x < M``: bin ``j`` holds ``j/B <= x/M < (j+1)/B``. A window
  that sets a new max (``x = M``) is in no bin; it belongs to the top windows.
- Each bin keeps up to ``slots`` windows, those with the smallest keys among the windows offered
  to it (a window whose key is not below the largest kept key passes by).
- When the running max rises, the bins move up. A kept window whose ``x`` falls below its bin's
  new lower edge ``j/B * M`` leaves the bin, and its slot is free again. A kept window never
  crosses its bin's upper edge (``x < (j+1)/B * M`` held when it was read, and ``M`` only grows),
  so every kept window lies in its bin under the final max as well.

A window that left a bin does not come back, and a window passed by before slots were freed is
not offered again, so after the max rises a bin's sample is uniform only over the windows read
into it since; the max mostly rises early in a corpus. Memory: ``units × bins × slots`` windows
of activations, whatever the corpus.
"""

from __future__ import annotations

import torch


class QuantileSample:
    """Per unit and bin (see the module docstring), the kept windows with the smallest keys."""

    def __init__(
        self,
        n_units: int,
        bins: int,
        slots: int,
        window_tokens: int,
        seed: int,
        firing_threshold: float,
    ) -> None:
        self.bins = bins
        self.slots = slots
        self.threshold = max(firing_threshold, 0.0)
        self._generator = torch.Generator().manual_seed(seed)
        self.max = torch.full((n_units,), float("-inf"))
        self._key = torch.full((n_units, bins, slots), float("inf"))
        self._index = torch.full((n_units, bins, slots), -1, dtype=torch.long)
        self._score = torch.zeros(n_units, bins, slots)
        self._acts = torch.zeros(n_units, bins, slots, window_tokens)
        self._edges = (torch.arange(bins, dtype=torch.float32) / bins).view(1, bins, 1)

    def update(self, best: torch.Tensor, acts: torch.Tensor, window_index: torch.Tensor) -> None:
        """Offer a batch: ``best[unit, batch]`` window maxima, ``acts[batch, pos, unit]``."""
        n_batch = best.shape[1]
        keys = torch.rand(n_batch, generator=self._generator)
        running = torch.maximum(best.cummax(dim=1).values, self.max.unsqueeze(1))  # [unit, batch]
        start = self.max
        self.max = running[:, -1].clone()
        offered = (best > self.threshold) & (best < running)
        frac = torch.where(offered, best / running, 0.0)
        bins = (frac * self.bins).floor_().clamp_(0, self.bins - 1).long()
        # A window can enter where its key beats the bin's largest kept key as the batch starts,
        # or where the unit's max has risen within the batch (slots may have been freed). Other
        # units' bins only lose keys within the batch, so this test lets through all that enter.
        largest = self._key.amax(dim=2).gather(1, bins)  # [unit, batch]
        risen = running > start.unsqueeze(1)
        look = (offered & (keys < largest)) | risen
        for b in torch.any(look, dim=0).nonzero()[:, 0].tolist():
            units = look[:, b].nonzero()[:, 0]
            self._step(
                units,
                running[units, b],
                best[units, b],
                offered[units, b],
                bins[units, b],
                keys[b],
                int(window_index[b]),
                acts[b],
            )

    def _step(
        self,
        units: torch.Tensor,
        m: torch.Tensor,
        x: torch.Tensor,
        offered: torch.Tensor,
        bins: torch.Tensor,
        key: torch.Tensor,
        index: int,
        acts: torch.Tensor,
    ) -> None:
        """One window (corpus index ``index``, activations ``acts[pos, unit]``) for ``units``."""
        # Bins move up with the max: kept windows below their bin's new lower edge leave.
        low = (self._score[units] < self._edges * m.view(-1, 1, 1)) & (self._index[units] >= 0)
        if low.any():
            u, j, s = low.nonzero(as_tuple=True)
            self._key[units[u], j, s] = float("inf")
            self._index[units[u], j, s] = -1
        worst = self._key[units, bins].max(dim=1)  # [units]: largest key and its slot
        enter = offered & (key < worst.values)
        if not enter.any():
            return
        u, j, s = units[enter], bins[enter], worst.indices[enter]
        self._key[u, j, s] = key
        self._index[u, j, s] = index
        self._score[u, j, s] = x[enter]
        self._acts[u, j, s] = acts[:, u].t()

    def kept_windows(self) -> torch.Tensor:
        """Corpus indices of every window some unit keeps (unsorted, repeats possible)."""
        index = self._index.reshape(-1)
        return index[index >= 0]

    def chosen(self, per_bin: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per unit and bin, the ``per_bin`` kept windows with the smallest keys, in key order:
        (slot [unit, bin, per_bin], corpus index [unit, bin, per_bin], -1 where a bin has fewer).
        """
        n = min(per_bin, self.slots)
        order = self._key.argsort(dim=2, stable=True)[..., :n]
        return order, self._index.gather(2, order)

    def acts_at(self, unit: torch.Tensor, bin_: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """[n, pos] the activations of the kept windows at (unit, bin, slot)."""
        return self._acts[unit, bin_, slot]

    def state_dict(self) -> dict[str, object]:
        return {
            "max": self.max,
            "key": self._key,
            "index": self._index,
            "score": self._score,
            "acts": self._acts,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.max, self._key, self._index = state["max"], state["key"], state["index"]
        self._score, self._acts = state["score"], state["acts"]
        self._generator.set_state(state["generator"])
