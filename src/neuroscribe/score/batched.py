"""Every score kind of many (explanation, simulator) pairs at once.

Per pair, what is cheap and differs by pair is done as ``score_explanation`` does it: matching
simulations to windows, the notes on missing windows, each kind's ``prepare`` (the calibration
line, the detection cut). The metrics and their bootstrap intervals, where the time goes, run
vectorised (``score.vector``): pairs whose evaluation windows have one layout (count and
lengths) are stacked, and each family computes the value and every resample for all of them in
a few array operations. A kind without a vectorised form (a plug-in's) is computed pair by pair.
The scores equal ``score_explanation``'s, in the same order (the tests compare them).
"""

from __future__ import annotations

from collections.abc import Sequence

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Score, Simulation, Split, UnitExamples
from neuroscribe.score.jobs import Job, Row, run_jobs
from neuroscribe.score.kinds import ScoringContext
from neuroscribe.score.metrics import MetricValue, bootstrap_ci
from neuroscribe.score.score import (
    Aligned,
    align,
    check_pair,
    index_by_window,
    join_reasons,
    score_kinds,
)

Pair = tuple[str, str, UnitExamples, Sequence[Simulation]]
"""(explanation id, simulator, the explanation's unit, that simulator's simulations of it)."""

def score_pairs(pairs: Sequence[Pair], cfg: ScoreConfig, seed: int = 0) -> list[Score]:
    """``score_explanation`` of every pair, concatenated in the order of ``pairs``."""
    rows: list[Row] = []
    jobs: list[Job] = []
    kinds = score_kinds()
    for explanation_id, simulator, unit, simulations in pairs:
        check_pair(explanation_id, simulator, simulations)
        by_window = index_by_window(simulations)
        calibration = align(unit.in_splits(Split.CALIBRATE), by_window)
        ctx = ScoringContext(unit, calibration.true, calibration.pred, calibration.coverage_note())
        aligned_by_splits: dict[tuple[Split, ...], Aligned] = {}
        for kind in kinds:
            windows = unit.in_splits(*kind.splits)
            if kind.only_when_present and not windows:
                continue
            aligned = aligned_by_splits.get(kind.splits)
            if aligned is None:
                aligned = aligned_by_splits[kind.splits] = align(windows, by_window)
            prepared = kind.prepare(ctx)
            metric = prepared.metric
            row = Row(
                {"explanation_id": explanation_id, "simulator": simulator, "kind": kind.name,
                 "n_tokens": aligned.n_tokens, "n_windows": len(aligned.true)},
                (aligned.coverage_note(), prepared.note if metric is not None else None),
            )
            rows.append(row)
            if not windows:
                row.result = MetricValue(None, f"no {' or '.join(s.value for s in kind.splits)}"
                                               " windows")
            elif metric is None:
                row.result = MetricValue(None, prepared.note)
            elif prepared.vector is not None and aligned.true and all(
                len(t) for t in aligned.true
            ):
                jobs.append(Job(row, prepared.vector, metric, aligned.true, aligned.pred))
            else:
                row.result = metric(aligned.true, aligned.pred)
                if row.result.value is not None:
                    row.ci = bootstrap_ci(
                        aligned.true, aligned.pred, metric, cfg.bootstrap, cfg.ci_level, seed
                    )
    run_jobs(jobs, cfg, seed)
    return [
        Score(**row.fields, value=row.result.value,  # type: ignore[union-attr, arg-type]
              reason=join_reasons(row.result.reason, *row.notes),  # type: ignore[union-attr]
              ci_low=row.ci[0], ci_high=row.ci[1])
        for row in rows
    ]
