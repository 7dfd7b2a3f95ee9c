"""Adaptive scoring (``budget.ci_width``): held-out windows simulated in steps, until the
headline score's bootstrap interval is narrow enough.

Each (explanation, simulator) pair simulates, in its first step, its unit's calibration and
out-of-distribution windows and the first ``budget.ci_step`` windows of each of the top and
random held-out splits (each split in an order drawn once per unit from ``collect.seed``), then
``ci_step`` more of each per step. After each step the pair is scored as the score stage will
score it (every kind, predictions rounded to 32-bit floats as the warehouse stores them), and
it stops once its headline score (``registry.HEADLINE_SCORE``) has an interval narrower than
``ci_width`` and at least ``ci_min_windows`` top and random windows are simulated, or when its
windows run out. A window's simulation does not depend on the windows
simulated with it, so the rows are those of a full simulation, fewer; the scores then rest on
the windows simulated (``scores.n_windows``; the reason notes the windows not simulated).
Deterministic: a resumed or repeated run stops every pair at the same step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from neuroscribe.config import RunConfig
from neuroscribe.records import Explanation, Simulation, Split, UnitExamples, UnitWindow, Window
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.batched import score_pairs
from neuroscribe.simulate.base import as_stored

Jobs = list[tuple[Explanation, list[Window]]]
Runner = Callable[[Jobs], list[list[Simulation]]]
"""Simulates jobs (explanation, windows), one list of simulations per job, in order."""


def steps(unit: UnitExamples, step: int, seed: int) -> list[list[UnitWindow]]:
    """The unit's simulated windows, step by step (see the module docstring)."""
    order = random.Random(f"{seed}:{unit.unit.key}")
    top, rnd = unit.in_splits(Split.SCORE_TOP), unit.in_splits(Split.SCORE_RANDOM)
    order.shuffle(top)
    order.shuffle(rnd)
    n = max(1, -(-len(top) // step), -(-len(rnd) // step))
    first = unit.in_splits(Split.CALIBRATE, Split.SCORE_OOD)
    return [
        (first if i == 0 else []) + top[i * step : (i + 1) * step] + rnd[i * step : (i + 1) * step]
        for i in range(n)
    ]


def simulate_adaptive(
    simulator: str,
    explanations: Sequence[Explanation],
    by_key: Mapping[str, UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    run: Runner,
) -> list[Simulation]:
    """The simulations of ``simulator`` for ``explanations``, step by step, each pair stopping
    once its headline interval is narrower than ``cfg.budget.ci_width`` (after at least
    ``ci_min_windows`` top and random windows)."""
    width = cfg.budget.ci_width
    assert width is not None, "adaptive scoring needs budget.ci_width"
    planned = {
        e.explanation_id: steps(by_key[e.unit_key], cfg.budget.ci_step, cfg.collect.seed)
        for e in explanations
    }
    held_out = {Split.SCORE_TOP, Split.SCORE_RANDOM}
    seen = {e.explanation_id: 0 for e in explanations}  # top and random windows simulated
    done: dict[str, list[Simulation]] = {e.explanation_id: [] for e in explanations}
    active, k = list(explanations), 0
    while active:
        jobs = [
            (e, [windows[w.window_id] for w in planned[e.explanation_id][k]]) for e in active
        ]
        for e, sims in zip(active, run(jobs), strict=True):
            done[e.explanation_id].extend(sims)
            seen[e.explanation_id] += sum(
                w.split in held_out for w in planned[e.explanation_id][k]
            )
        k += 1
        pairs = [
            (e.explanation_id, simulator, by_key[e.unit_key],
             [as_stored(s) for s in done[e.explanation_id]])
            for e in active
            if seen[e.explanation_id] >= cfg.budget.ci_min_windows
        ]
        narrow = {
            s.explanation_id
            for s in score_pairs(pairs, cfg.score, seed=cfg.collect.seed)
            if s.kind == HEADLINE_SCORE and s.ci_low is not None and s.ci_high is not None
            and s.ci_high - s.ci_low < width
        }
        active = [
            e for e in active
            if k < len(planned[e.explanation_id]) and e.explanation_id not in narrow
        ]
    return [s for e in explanations for s in done[e.explanation_id]]
