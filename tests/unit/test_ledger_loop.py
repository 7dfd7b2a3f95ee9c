"""The ledger never writes on an event loop: a batch made due there is handed to the sink by the
ledger's background thread, so the endpoint requests in flight on the loop do not wait for it."""

from __future__ import annotations

import asyncio
import threading

from neuroscribe.llm.base import Ledger, LLMCall


def _call(i: int) -> LLMCall:
    return LLMCall(request_hash=f"h{i}", annotator="fake/x", purpose="simulate", prompt_sha=None,
                   params={}, response="x", status="ok")


def test_a_batch_due_on_an_event_loop_is_written_by_the_background_thread():
    writers: list[str] = []
    batches: list[list[str]] = []
    done = threading.Event()

    def sink(calls: list[LLMCall]) -> None:
        writers.append(threading.current_thread().name)
        batches.append([c.request_hash for c in calls])
        if sum(map(len, batches)) == 4:
            done.set()

    async def add_on_the_loop(ledger: Ledger) -> None:
        for i in range(4):
            ledger.add(_call(i))

    with Ledger(sink, flush_every=2, flush_seconds=3600) as ledger:
        asyncio.run(add_on_the_loop(ledger))
        assert done.wait(30)
    assert set(writers) == {"ledger-flush"}
    assert [h for b in batches for h in b] == ["h0", "h1", "h2", "h3"]


def test_without_a_background_thread_the_loop_writes_itself():
    writers: list[str] = []
    ledger = Ledger(lambda calls: writers.append(threading.current_thread().name), flush_every=1)

    async def add_one() -> None:
        ledger.add(_call(0))

    asyncio.run(add_one())  # not used as a context manager: no background thread to wake
    assert writers == [threading.current_thread().name]
