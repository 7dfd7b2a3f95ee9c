"""Batching plumbing without a model: the coalescer gathers requests made at the same time (up
to its limit, including those released one per loop turn by a lock), and ``answer_batch`` keeps
one cache entry and one ledger row per request, in request order."""

from __future__ import annotations

import asyncio

import pytest

from neuroscribe.llm.base import Ledger
from neuroscribe.llm.batch_record import answer_batch
from neuroscribe.llm.cache import DISTRIBUTIONS, ResponseCache
from neuroscribe.llm.coalesce import Coalescer
from neuroscribe.llm.recorder import BackendError, CallRecorder


def test_requests_made_together_are_answered_in_batches_up_to_the_limit():
    batches = []

    def run(items):
        batches.append(list(items))
        return [x * 10 if x != 3 else BackendError("no", "server_error") for x in items]

    coalescer = Coalescer(run, limit=4)
    lock = asyncio.Lock()

    async def through_lock(x):  # released one waiter per loop turn, as a probe's waiters are
        async with lock:
            pass
        return await coalescer.submit(x)

    async def main():
        return await asyncio.gather(*(through_lock(x) for x in range(6)), return_exceptions=True)

    results = asyncio.run(main())
    assert batches == [[0, 1, 2, 3], [4, 5]]
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], BackendError)  # one request's failure is its own


def test_a_batch_that_raises_fails_every_request_in_it():
    def run(items):
        raise RuntimeError("model crashed")

    coalescer = Coalescer(run, limit=8)

    async def main():
        return await asyncio.gather(
            *(coalescer.submit(x) for x in range(3)), return_exceptions=True
        )

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def recorder():
    ledger = Ledger()
    return CallRecorder("local/m", ledger, "simulate", "sha", cache=ResponseCache()), ledger


def test_answer_batch_computes_misses_once_and_records_every_request_in_order():
    rec, ledger = recorder()
    seen = []

    def compute(todo):
        seen.append(list(todo))
        return [[{"x": float(i)}] if i != 3 else ValueError("no boundary") for i in todo]

    keys = ["a", "b", "a", "c"]
    params = [{"i": i} for i in range(4)]
    out = answer_batch(rec, keys, params, DISTRIBUTIONS, compute)
    assert seen == [[0, 1, 3]]  # "a" repeated: computed once
    assert out[0] == out[2] == [{"x": 0.0}] and out[1] == [{"x": 1.0}]
    assert isinstance(out[3], ValueError)
    calls = ledger.drain()
    assert [c.params["i"] for c in calls] == [0, 1, 2, 3]
    assert [c.cache_hit for c in calls] == [False, False, True, False]
    assert [c.status for c in calls] == ["ok", "ok", "ok", "failed"]
    assert "no boundary" in calls[3].error
    # A second batch: the answered requests are hits; the failed one is computed again.
    out = answer_batch(rec, keys, params, DISTRIBUTIONS, compute)
    assert seen[-1] == [3] and [c.cache_hit for c in ledger.drain()] == [True, True, True, False]


def test_answer_batch_shares_the_batch_time_among_the_requests_it_computed():
    rec, ledger = recorder()

    def compute(todo):
        return [[{"x": 1.0}] for _ in todo]

    answer_batch(rec, ["a", "b"], [{}, {}], DISTRIBUTIONS, compute)
    first, second = (c.latency_ms for c in ledger.drain())
    assert first == pytest.approx(second, rel=1e-6) and first > 0


def test_a_compute_that_raises_fails_every_miss():
    rec, ledger = recorder()

    def compute(todo):
        raise BackendError("gone", "connection")

    out = answer_batch(rec, ["a", "b"], [{}, {}], DISTRIBUTIONS, compute)
    assert all(isinstance(o, BackendError) for o in out)
    assert [c.status for c in ledger.drain()] == ["failed", "failed"]
