"""Progress reporting for long stages, without tying the library to a terminal.

Stages wrap their loops in ``track(...)``. By default nothing is shown; the CLI installs a rich
progress bar with ``set_reporter``. Flows run in the CLI's process, so the bars show there too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
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


@contextmanager
def step(description: str, total: int) -> Iterator[None]:
    """A step without a loop of its own to report (reading or writing the warehouse), shown as
    a task of ``total`` done at its end: off a terminal it still logs its start, a heartbeat
    while it runs, and its end, so a catalogue's long reads are not silent."""
    with task(description, total) as advance:
        yield
        advance(total)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total) as advance:
        for item in items:
            yield item
            advance(1)


def track_chunks(items: Sequence[T], size: int, description: str) -> Iterator[Sequence[T]]:
    """``items`` in consecutive chunks of ``size`` (at least 1), the progress advanced by each
    chunk once the caller is done with it."""
    size = max(1, size)
    with task(description, len(items)) as advance:
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            yield chunk
            advance(len(chunk))


class LogReporter:
    """Progress as plain lines, for output that is not a terminal (a log file, a scheduled run):
    a line when a task starts and ends, and while any runs, one line per running task at least
    every ``every_s`` seconds (from a background thread, so a slow step still shows it is alive),
    with counts, elapsed time and an estimate of the time left."""

    def __init__(self, write: Callable[[str], None], every_s: float = 30.0) -> None:
        self.write = write
        self.every_s = every_s
        self._tasks: dict[int, _LogTask] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(
        self, description: str, total: int | None
    ) -> AbstractContextManager[Callable[[int], None]]:
        return self._task(description, total)

    @contextmanager
    def _task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        t = _LogTask(description, total, time.monotonic())
        self.write(f"{description}: started" + (f", {total} to do" if total else ""))
        with self._lock:
            self._tasks[id(t)] = t
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
                self._thread.start()
        try:
            yield t.advance
        finally:
            with self._lock:
                del self._tasks[id(t)]
                idle, thread = not self._tasks, self._thread
                if idle:
                    self._thread = None
                    self._stop.set()
            if idle and thread is not None:
                thread.join()
            self.write(f"{description}: {t.done}{f'/{total}' if total else ''} in "
                       f"{_clock(time.monotonic() - t.start)}")

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                lines = [t.status(time.monotonic()) for t in self._tasks.values()]
            for line in lines:
                self.write(line)


class _LogTask:
    def __init__(self, description: str, total: int | None, start: float) -> None:
        self.description, self.total, self.start, self.done = description, total, start, 0

    def advance(self, n: int) -> None:
        self.done += n

    def status(self, now: float) -> str:
        elapsed = now - self.start
        if not self.total:
            return f"{self.description}: {self.done} done, {_clock(elapsed)} elapsed"
        share = self.done / self.total
        eta = f", about {_clock(elapsed / share - elapsed)} left" if self.done else ""
        return (f"{self.description}: {self.done}/{self.total} ({share:.0%}), "
                f"{_clock(elapsed)} elapsed{eta}")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
