"""What a pass over one corpus keeps as it streams: the selections and the kept windows."""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections.abc import Iterator
from typing import Any

import torch

from neuroscribe.collect.quantile import QuantileSample
from neuroscribe.collect.select import RandomSample, RunningStats, TopWindows
from neuroscribe.collect.windows import RawWindow


class CorpusPass:
    """A random sample of windows, optionally the top windows, the quantile-bin windows and
    running statistics, and the tokens of the windows still kept (pruned as the store doubles,
    so memory stays bounded by the kept windows).

    Each batch's per-unit window maxima are computed once and shared by the selections.
    """

    def __init__(
        self,
        sample: RandomSample,
        top: TopWindows | None = None,
        quantile: QuantileSample | None = None,
        stats: RunningStats | None = None,
    ) -> None:
        self.sample = sample
        self.top = top
        self.quantile = quantile
        self.stats = stats
        self.store: dict[int, RawWindow] = {}
        self.n_windows = 0
        self.digest = b""
        """Chained hash of every window read (document, offset, tokens), in order."""
        self._prune_at = 1024

    def update(self, batch: list[RawWindow], acts: torch.Tensor) -> None:
        """Offer a batch: its windows and the units' activations ``acts[batch, pos, unit]``."""
        index = torch.arange(batch[0].index, batch[0].index + len(batch))
        self.sample.update(acts, index)
        if self.top is not None or self.quantile is not None or self.stats is not None:
            best = acts.amax(dim=1).t().contiguous()  # [unit, batch] window maxima
            if self.top is not None:
                self.top.update(acts, index, best)
            if self.quantile is not None:
                self.quantile.update(best, acts, index)
            if self.stats is not None:
                self.stats.update(acts, best)
        self.store.update((w.index, w) for w in batch)
        self.n_windows += len(batch)
        self.digest = chain_digest(self.digest, batch)
        if len(self.store) > self._prune_at:
            self.prune()
            self._prune_at = max(1024, 2 * len(self.store))

    def skip_read(self, windows: Iterator[RawWindow]) -> bool:
        """Consume from ``windows`` the ones this state has already read; False when they are
        not the same windows (their chained hash differs), True otherwise."""
        if self.n_windows == 0:
            return True
        skipped = list(itertools.islice(windows, self.n_windows))
        return chain_digest(b"", skipped) == self.digest

    def prune(self) -> None:
        keep = set(self.sample.kept_index().tolist())
        if self.top is not None:
            keep |= set(self.top.kept_windows().unique().tolist())
        if self.quantile is not None:
            keep |= set(self.quantile.kept_windows().unique().tolist())
        self.store = {i: w for i, w in self.store.items() if i in keep}

    def state_dict(self) -> dict[str, Any]:
        self.prune()
        return {
            "n_windows": self.n_windows,
            "digest": self.digest.hex(),
            "sample": self.sample.state_dict(),
            "top": self.top.state_dict() if self.top is not None else None,
            "quantile": self.quantile.state_dict() if self.quantile is not None else None,
            "stats": self.stats.state_dict() if self.stats is not None else None,
            "store": [[w.index, w.doc_id, w.start, list(w.token_ids)] for w in self.store.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_windows = int(state["n_windows"])
        self.digest = bytes.fromhex(state["digest"])
        self.sample.load_state_dict(state["sample"])
        for part, name in ((self.top, "top"), (self.quantile, "quantile"), (self.stats, "stats")):
            if part is not None:
                part.load_state_dict(state[name])
        self.store = {i: RawWindow(i, d, s, tuple(t)) for i, d, s, t in state["store"]}


def chain_digest(digest: bytes, windows: list[RawWindow]) -> bytes:
    """Extend a chained sha256 by each window in turn: the same whatever the batches."""
    for w in windows:
        h = hashlib.sha256(digest)
        h.update(f"{w.doc_id}\0{w.start}\0".encode())
        h.update(array("q", w.token_ids).tobytes())
        digest = h.digest()
    return digest
