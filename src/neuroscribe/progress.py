"""Progress reporting for long stages, without tying the library to a terminal.

Stages wrap their loops in ``track(...)``. By default nothing is shown; the CLI installs a rich
progress bar with ``set_reporter``. Flows run in the CLI's process, so the bars show there too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

T = TypeVar("T")

# A reporter takes (description, total) and returns a context manager whose value is an
# ``advance(n)`` callable.
Reporter = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


def _silent(description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


_reporter: Reporter = _silent


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter or _silent


def task(description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
    """A progress task: ``with task("collect", n) as advance: advance(k)``."""
    return _reporter(description, total)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total) as advance:
        for item in items:
            yield item
            advance(1)
