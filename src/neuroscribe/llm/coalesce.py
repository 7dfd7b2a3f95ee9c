"""Requests made at the same time on the event loop, answered together by one batched call.

``fan_out`` keeps up to ``max_concurrency`` coroutines in flight; for an in-process model each
of them would otherwise run its own forward passes in turn. A ``Coalescer`` collects the
requests they submit and hands them, up to ``limit`` at once, to one function that answers them
all (in a worker thread, so the loop stays free). While a batch runs, new requests queue for the
next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from neuroscribe.llm.base import BATCH_UNITS, CALL_UNIT

X = TypeVar("X")
T = TypeVar("T")

SETTLE_TURNS = 2
"""Loop turns without a new request after which a batch is taken (requests released one per
turn, as waiters of a lock are, still join the batch)."""

MAX_TURNS = 1000
"""Most loop turns a batch waits to fill."""


class Coalescer(Generic[X, T]):
    """``await submit(x)`` answers ``x`` through ``run([... x ...])``, batched with the other
    requests submitted meanwhile. ``run`` returns one entry per request: its answer, or the
    exception that request raises."""

    def __init__(self, run: Callable[[list[X]], Sequence[T | BaseException]], limit: int) -> None:
        self.run = run
        self.limit = max(1, limit)
        self._pending: list[tuple[X, asyncio.Future[Any], str | None]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: X) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future, CALL_UNIT.get()))  # whose work, for the ledger
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        result: T = await future
        return result

    async def _drain(self) -> None:
        while self._pending:
            await self._settle()
            batch = self._pending[: self.limit]
            del self._pending[: self.limit]
            token = BATCH_UNITS.set(tuple(unit for _, _, unit in batch))  # copied to the thread
            try:
                results: Sequence[Any] = await asyncio.to_thread(
                    self.run, [item for item, _, _ in batch]
                )
            except BaseException as e:  # the whole batch failed: every request raises it
                results = [e] * len(batch)
            finally:
                BATCH_UNITS.reset(token)
            for (_, future, _), result in zip(batch, results, strict=True):
                if future.cancelled():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _settle(self) -> None:
        """Let the loop run until no request has arrived for ``SETTLE_TURNS`` turns, or a full
        batch waits."""
        seen, quiet = len(self._pending), 0
        for _ in range(MAX_TURNS):
            if len(self._pending) >= self.limit or quiet >= SETTLE_TURNS:
                return
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._pending) == seen else 0
            seen = len(self._pending)
