"""Dealing a unit's windows into held-out splits, and proving the splits disjoint.

Top windows are dealt by rank, round-robin, into EXPLAIN, VALIDATE, CALIBRATE and SCORE_TOP
(rank 0 → explain, rank 1 → validate, rank 2 → calibrate, rank 3 → score_top, rank 4 → explain,
...; a split whose quota is full, or zero, is passed over), so that every split spans the unit's
upper range rather than one taking all the best windows. Windows sampled from activation bins
below the top (``n_quantile`` per bin, see ``quantile.py``) go to EXPLAIN too, with ranks -2
(highest bin), -3, ... Random windows are dealt round-robin into VALIDATE, CALIBRATE and
SCORE_RANDOM (``n_random`` each), and windows of a second corpus into SCORE_OOD.

Disjointness holds by construction: one set of used windows per unit, checked before each window is
placed. A window whose tokens repeat a used window's tokens (the same boilerplate in two documents)
is also passed over, so the explainer never sees, word for word, text it is scored on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from neuroscribe.config import CollectConfig
from neuroscribe.records import Split, UnitExamples, UnitWindow


@dataclass(frozen=True)
class Candidate:
    """A window offered to a unit's splits, with the unit's activations on it."""

    window_id: str
    token_ids: tuple[int, ...]
    activations: tuple[float, ...]


class RoundRobin:
    """Deals items into splits in turn, skipping splits whose quota is met."""

    def __init__(self, quotas: Sequence[tuple[Split, int]]) -> None:
        self._splits = [s for s, q in quotas if q > 0]
        self._left = {s: q for s, q in quotas if q > 0}
        self._turn = 0

    @property
    def full(self) -> bool:
        return not any(self._left.values())

    def next(self) -> Split | None:
        n = len(self._splits)
        for step in range(n):
            split = self._splits[(self._turn + step) % n]
            if self._left[split]:
                self._left[split] -= 1
                self._turn = (self._turn + step + 1) % n
                return split
        return None


def top_quotas(cfg: CollectConfig) -> list[tuple[Split, int]]:
    return [
        (Split.EXPLAIN, cfg.n_explain),
        (Split.VALIDATE, cfg.n_validate),
        (Split.CALIBRATE, cfg.n_calibrate),
        (Split.SCORE_TOP, cfg.n_score_top),
    ]


def random_quotas(cfg: CollectConfig) -> list[tuple[Split, int]]:
    return [
        (Split.VALIDATE, cfg.n_random),
        (Split.CALIBRATE, cfg.n_random),
        (Split.SCORE_RANDOM, cfg.n_random),
    ]


def n_top_needed(cfg: CollectConfig) -> int:
    return sum(q for _, q in top_quotas(cfg))


def split_sequence(quotas: Sequence[tuple[Split, int]]) -> list[Split]:
    """The splits a RoundRobin deals, in order, until every quota is met: the i-th window placed
    goes to the i-th split, whichever windows were passed over before it."""
    dealer = RoundRobin(quotas)
    out = []
    while (split := dealer.next()) is not None:
        out.append(split)
    return out


def assign_unit(
    top: Iterable[tuple[int, Candidate]],
    random: Iterable[Candidate],
    ood: Iterable[Candidate],
    cfg: CollectConfig,
    quantile: Sequence[Iterable[Candidate]] = (),
) -> tuple[UnitWindow, ...]:
    """Deal one unit's windows: ``top`` as (rank, candidate) best first, then the quantile bins
    (highest first, up to ``n_quantile`` each into EXPLAIN, rank -2 for the highest bin, -3 for
    the next...), then random, then OOD."""
    used_ids: set[str] = set()
    used_tokens: set[tuple[int, ...]] = set()
    placed: list[UnitWindow] = []

    def deal(candidates: Iterable[tuple[int, Candidate]], dealer: RoundRobin) -> None:
        if dealer.full:
            return
        for rank, c in candidates:
            if c.window_id in used_ids or c.token_ids in used_tokens:
                continue
            split = dealer.next()
            assert split is not None  # not full, so some split has room
            used_ids.add(c.window_id)
            used_tokens.add(c.token_ids)
            placed.append(
                UnitWindow(window_id=c.window_id, split=split, rank=rank, activations=c.activations)
            )
            if dealer.full:
                return  # stop before pulling (and decoding) another candidate

    deal(top, RoundRobin(top_quotas(cfg)))
    for b, candidates in enumerate(quantile):
        deal(((-2 - b, c) for c in candidates), RoundRobin([(Split.EXPLAIN, cfg.n_quantile)]))
    deal(((-1, c) for c in random), RoundRobin(random_quotas(cfg)))
    deal(((-1, c) for c in ood), RoundRobin([(Split.SCORE_OOD, cfg.n_random)]))
    return tuple(placed)


def check_disjoint(units: Sequence[UnitExamples]) -> list[str]:
    """Problems found: a window listed twice for one unit (in two splits, or twice in one).

    Returns [] when every unit's splits are disjoint.
    """
    problems = []
    for unit in units:
        first: dict[str, Split] = {}
        for w in unit.windows:
            if w.window_id in first:
                where = (
                    f"splits {first[w.window_id].value} and {w.split.value}"
                    if first[w.window_id] != w.split
                    else f"split {w.split.value} twice"
                )
                problems.append(f"unit {unit.unit.key}: window {w.window_id} is in {where}")
            else:
                first[w.window_id] = w.split
    return problems
