"""Score rows computed vectorised: each pending row is a ``Job`` (a vectorised metric over its
windows, ``score.vector``); ``run_jobs`` stacks the jobs that share a family and a window layout
(count and lengths) and computes their values and bootstrap intervals together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from neuroscribe.config import ScoreConfig
from neuroscribe.score.metrics import Metric, MetricValue, Windows
from neuroscribe.score.vector import FAMILIES, Vector, counts_matrix, interval

CHUNK_ELEMENTS = 4_000_000
"""Largest pairs x resamples x examples array a family builds at once (about 32 MB)."""


@dataclass
class Row:
    """One score being assembled: its fields, and the job that computes it (if pending)."""

    fields: dict[str, object]
    notes: tuple[str | None, ...]
    result: MetricValue | None = None
    ci: tuple[float | None, float | None] = (None, None)


@dataclass
class Job:
    """One row's value and interval to compute vectorised: its metric over these windows."""

    row: Row
    vector: Vector
    metric: Metric
    true: Windows
    pred: Windows
    lengths: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = tuple(len(t) for t in self.true)


def run_jobs(jobs: Sequence[Job], cfg: ScoreConfig, seed: int) -> None:
    """Fill every job's row: stacked by (family, layout), in chunks of ``CHUNK_ELEMENTS``."""
    groups: dict[tuple[str, tuple[int, ...]], list[Job]] = {}
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


def _run_chunk(family: str, jobs: Sequence[Job], starts: np.ndarray, size: int,
               c: np.ndarray, level: float) -> None:
    compute, reasons = FAMILIES[family]
    # A lone job is stacked twice: BLAS multiplies a single row with another kernel (gemv),
    # whose sums round differently, so its score would depend on how many jobs share its stack
    # (how the units were chunked); from two rows on, a row's result is the same in any stack.
    stack = [*jobs, *jobs] if len(jobs) == 1 else list(jobs)
    true = np.array([np.fromiter(chain.from_iterable(j.true), float, size) for j in stack])
    pred = np.array([np.fromiter(chain.from_iterable(j.pred), float, size) for j in stack])
    params = np.array([j.vector.params for j in stack], dtype=np.float64).reshape(len(stack), -1)
    values, codes = compute(true, pred, starts, params, c)
    defined = (codes == 0) & np.isfinite(values)
    low = high = np.full(len(stack), np.nan)
    if c.shape[0] > 1:
        low, high = interval(values[:, 1:], defined[:, 1:], level)
    for i, job in enumerate(jobs):
        if codes[i, 0]:
            job.row.result = MetricValue(None, reasons[codes[i, 0]])
            continue
        if defined[i, 0]:
            job.row.result = MetricValue(float(values[i, 0]))
        else:  # rounding left nothing to divide by: the scalar metric decides
            job.row.result = job.metric(job.true, job.pred)
        if job.row.result.value is not None and not np.isnan(low[i]):
            job.row.ci = (float(low[i]), float(high[i]))
