"""Every ledger row names the unit its call worked for (``llm_calls.unit_key``): calls made
inside ``for_unit`` / ``in_unit``, in a worker thread started there, and requests coalesced
from several units into one batch, each with its own unit."""

from __future__ import annotations

import asyncio

from neuroscribe.llm.base import CALL_UNIT, Ledger, for_unit, in_unit
from neuroscribe.llm.batch_record import answer_batch
from neuroscribe.llm.cache import DISTRIBUTIONS, ResponseCache
from neuroscribe.llm.coalesce import Coalescer
from neuroscribe.llm.fanout import fan_out
from neuroscribe.llm.recorder import CallRecorder


def _recorder() -> tuple[CallRecorder, Ledger]:
    ledger = Ledger()
    return CallRecorder("local/m", ledger, "simulate", "sha", cache=ResponseCache()), ledger


def _compute(todo):
    return [[{"x": float(i)}] for i in todo]


def test_calls_outside_any_unit_name_none_and_inside_name_the_unit():
    rec, ledger = _recorder()
    answer_batch(rec, ["a"], [{}], DISTRIBUTIONS, _compute)
    with for_unit("u1"):
        answer_batch(rec, ["b", "a"], [{}, {}], DISTRIBUTIONS, _compute)  # a hit is u1's too
        assert CALL_UNIT.get() == "u1"
    assert CALL_UNIT.get() is None
    assert [(c.unit_key, c.cache_hit) for c in ledger.drain()] == [
        (None, False), ("u1", False), ("u1", True)
    ]


def test_requests_of_several_units_answered_in_one_batch_keep_their_units():
    rec, ledger = _recorder()
    batches = []

    def run(keys):
        batches.append(list(keys))
        return answer_batch(rec, keys, [{"k": k} for k in keys], DISTRIBUTIONS, _compute)

    coalescer = Coalescer(run, limit=8)

    async def one(unit: str, key: str):
        await asyncio.sleep(0)  # submitted from the unit's own task, as fan_out does
        return await coalescer.submit(key)

    units = {"k0": "u0", "k1": "u1", "k2": "u2", "k3": "u0"}
    fan_out(lambda kv: in_unit(kv[1], one(kv[1], kv[0])), list(units.items()), 4)
    assert batches == [["k0", "k1", "k2", "k3"]]  # one batch for all four units
    assert {c.params["k"]: c.unit_key for c in ledger.drain()} == units


def test_a_worker_thread_started_inside_a_unit_records_for_it():
    rec, ledger = _recorder()

    async def in_thread(key: str):
        return await asyncio.to_thread(answer_batch, rec, [key], [{}], DISTRIBUTIONS, _compute)

    fan_out(lambda k: in_unit(f"unit-{k}", in_thread(k)), ["a", "b"], 2)
    assert sorted(c.unit_key for c in ledger.drain()) == ["unit-a", "unit-b"]
