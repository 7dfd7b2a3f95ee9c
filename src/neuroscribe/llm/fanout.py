"""One way to run many LLM-bound calls at once: ``fan_out``.

Explain (units), simulate (windows, pooled across units) and the fuzz judge (marked windows)
all hand their work here as an async function over items, bounded by the annotator's
``max_concurrency``. The coroutines run on the process's one event loop (``llm.aio.LOOP``):
endpoint backends await their requests there, in-process backends run their call in a worker
thread (``Backend.achat``), so a bound of 1 is plain serial order and a bound of n keeps n
requests in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from neuroscribe.llm.aio import LOOP

T = TypeVar("T")
X = TypeVar("X")


async def map_bounded(fn: Callable[[X], Awaitable[T]], items: Sequence[X], limit: int) -> list[T]:
    """``[await fn(x) for x in items]`` with at most ``limit`` running at once, in order. Work
    starts only as a slot frees up, so prompts are rendered when they can be sent."""
    out: list[Any] = [None] * len(items)
    it = iter(range(len(items)))

    async def worker() -> None:
        for i in it:
            out[i] = await fn(items[i])

    await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(items))))))
    return out


def fan_out(fn: Callable[[X], Awaitable[T]], items: Sequence[X], limit: int) -> list[T]:
    """``map_bounded`` on the shared loop thread, waited for in the calling thread (which must
    not be the loop's own). Results are in the order of ``items``. ``fn`` turns the failures its
    caller expects (``BackendError``) into that item's typed failure record; anything else it
    raises is a bug and propagates."""
    if not items:
        return []
    return LOOP.run(map_bounded(fn, items, max(1, limit)))
