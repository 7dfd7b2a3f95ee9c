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
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Score, Simulation, Split, UnitExamples
from neuroscribe.score.kinds import ScoringContext
from neuroscribe.score.metrics import Metric, MetricValue, bootstrap_ci
from neuroscribe.score.score import _Aligned, _align, _check_pair, _index, _join, score_kinds
from neuroscribe.score.vector import FAMILIES, Vector, counts_matrix, interval

Pair = tuple[str, str, UnitExamples, Sequence[Simulation]]
"""(explanation id, simulator, the explanation's unit, that simulator's simulations of it)."""

CHUNK_ELEMENTS = 4_000_000
"""Largest pairs x resamples x examples array a family builds at once (about 32 MB)."""


@dataclass
class _Row:
    """One score being assembled: its fields, and the job that computes it (if pending)."""

    fields: dict[str, object]
    notes: tuple[str | None, ...]
    result: MetricValue | None = None
    ci: tuple[float | None, float | None] = (None, None)


@dataclass
class _Job:
    row: _Row
    vector: Vector
    metric: Metric
    aligned: _Aligned
    lengths: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = tuple(len(t) for t in self.aligned.true)


def score_pairs(pairs: Sequence[Pair], cfg: ScoreConfig, seed: int = 0) -> list[Score]:
    """``score_explanation`` of every pair, concatenated in the order of ``pairs``."""
    rows: list[_Row] = []
    jobs: list[_Job] = []
    kinds = score_kinds()
    for explanation_id, simulator, unit, simulations in pairs:
        _check_pair(explanation_id, simulator, simulations)
        by_window = _index(simulations)
        calibration = _align(unit.in_splits(Split.CALIBRATE), by_window)
        ctx = ScoringContext(unit, calibration.true, calibration.pred, calibration.coverage_note())
        aligned_by_splits: dict[tuple[Split, ...], _Aligned] = {}
        for kind in kinds:
            windows = unit.in_splits(*kind.splits)
            if kind.only_when_present and not windows:
                continue
            aligned = aligned_by_splits.get(kind.splits)
            if aligned is None:
                aligned = aligned_by_splits[kind.splits] = _align(windows, by_window)
            prepared = kind.prepare(ctx)
            metric = prepared.metric
            row = _Row(
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
                jobs.append(_Job(row, prepared.vector, metric, aligned))
            else:
                row.result = metric(aligned.true, aligned.pred)
                if row.result.value is not None:
                    row.ci = bootstrap_ci(
                        aligned.true, aligned.pred, metric, cfg.bootstrap, cfg.ci_level, seed
                    )
    _run_jobs(jobs, cfg, seed)
    return [
        Score(**row.fields, value=row.result.value,  # type: ignore[union-attr, arg-type]
              reason=_join(row.result.reason, *row.notes),  # type: ignore[union-attr]
              ci_low=row.ci[0], ci_high=row.ci[1])
        for row in rows
    ]


def _run_jobs(jobs: Sequence[_Job], cfg: ScoreConfig, seed: int) -> None:
    groups: dict[tuple[str, tuple[int, ...]], list[_Job]] = {}
    for job in jobs:
        groups.setdefault((job.vector.family, job.lengths), []).append(job)
    counts: dict[int, np.ndarray] = {}
    for (family, lengths), members in groups.items():
        n = len(lengths)
        if n not in counts:
            counts[n] = counts_matrix(n, cfg.bootstrap, seed)
        c = counts[n]
        starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.intp)
        size = sum(lengths)
        step = max(1, CHUNK_ELEMENTS // (c.shape[0] * max(size, n * n)))
        for lo in range(0, len(members), step):
            _run_chunk(family, members[lo : lo + step], starts, size, c, cfg.ci_level)


def _run_chunk(family: str, jobs: Sequence[_Job], starts: np.ndarray, size: int,
               c: np.ndarray, level: float) -> None:
    compute, reasons = FAMILIES[family]
    true = np.array([np.fromiter(chain.from_iterable(j.aligned.true), float, size) for j in jobs])
    pred = np.array([np.fromiter(chain.from_iterable(j.aligned.pred), float, size) for j in jobs])
    params = np.array([j.vector.params for j in jobs], dtype=np.float64).reshape(len(jobs), -1)
    values, codes = compute(true, pred, starts, params, c)
    defined = (codes == 0) & np.isfinite(values)
    low = high = np.full(len(jobs), np.nan)
    if c.shape[0] > 1:
        low, high = interval(values[:, 1:], defined[:, 1:], level)
    for i, job in enumerate(jobs):
        if codes[i, 0]:
            job.row.result = MetricValue(None, reasons[codes[i, 0]])
            continue
        if defined[i, 0]:
            job.row.result = MetricValue(float(values[i, 0]))
        else:  # rounding left nothing to divide by: the scalar metric decides
            job.row.result = job.metric(job.aligned.true, job.aligned.pred)
        if job.row.result.value is not None and not np.isnan(low[i]):
            job.row.ci = (float(low[i]), float(high[i]))
