"""Cache and ledger for requests answered in a batch: each one still gets its own cache entry and
ledger row, as if it had been made alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from neuroscribe.llm.base import BATCH_UNITS, CALL_UNIT
from neuroscribe.llm.cache import Codec
from neuroscribe.llm.recorder import CallRecorder

T = TypeVar("T")


def answer_batch(
    recorder: CallRecorder,
    keys: Sequence[str],
    params: Sequence[dict[str, Any]],
    codec: Codec[T],
    compute: Callable[[list[int]], Sequence[T | Exception]],
) -> list[T | Exception]:
    """Each request answered from the cache, or computed: ``compute(todo)`` gets the indices of
    the misses and returns one result (or the exception of that request) per index. A request
    repeated in the batch is computed once; its repeats are then cache hits. Every computed
    request's ledger row carries an equal share of the batch's time as its latency, so latencies
    still add up to the time spent. When ``compute`` itself raises, every miss fails with it.
    Ledger rows come in the order of the requests, each for the unit its request was made for
    (``BATCH_UNITS``, set by ``llm.coalesce``; else the caller's ``CALL_UNIT``)."""
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    todo = [i for key, i in first.items() if key not in recorder.cache]
    computed, share = _compute(compute, todo)
    out: list[T | Exception] = []
    units = BATCH_UNITS.get()
    for i, key in enumerate(keys):  # ledger rows in the order of the requests
        token = CALL_UNIT.set(units[i]) if units is not None and len(units) == len(keys) else None
        try:
            if i not in computed:
                hit = recorder.cached(key, params[i], codec)
                if hit is not None:
                    out.append(hit[0])
                    continue
                if first[key] in computed:  # a repeat of a request that failed just now
                    out.append(computed[first[key]])
                    continue
                # The cache forgot it meanwhile (cleared by another thread): answer it alone.
                alone, share = _compute(compute, [i])
                computed.update(alone)
            result = computed[i]
            if isinstance(result, Exception):
                recorder.record_failure(key, params[i], result, share)
                out.append(result)
            else:
                out.append(recorder.record(key, params[i], result, codec, share))
        finally:
            if token is not None:
                CALL_UNIT.reset(token)
    return out


def _compute(
    compute: Callable[[list[int]], Sequence[T | Exception]], todo: list[int]
) -> tuple[dict[int, T | Exception], float]:
    """The results of ``todo``, and each one's share of the time taken (ms)."""
    if not todo:
        return {}, 0.0
    start = time.perf_counter()
    try:
        results: Sequence[T | Exception] = compute(todo)
    except Exception as e:
        results = [e] * len(todo)
    share = (time.perf_counter() - start) * 1000 / len(todo)
    return dict(zip(todo, results, strict=True)), share
