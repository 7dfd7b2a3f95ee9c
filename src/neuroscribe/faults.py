"""Fault injection for the kill-and-resume tests: off unless ``$NEUROSCRIBE_KILL_AT`` is set.

``POINT`` or ``POINT#N`` makes the process SIGKILL itself the N-th time (default: the first) it
reaches ``POINT``, as ``kill -9`` would. Points: ``write:<table>`` (inside a warehouse write's
transaction, after the insert into that table and before the commit) and ``collect:batch``
(after a batch of the collection's forward pass).
"""

from __future__ import annotations

import os
import signal

KILL_AT_VAR = "NEUROSCRIBE_KILL_AT"

_kill_counts: dict[str, int] = {}


def kill_point(point: str) -> None:
    """Die here when $NEUROSCRIBE_KILL_AT names this point (and this count)."""
    spec = os.environ.get(KILL_AT_VAR)
    if not spec:
        return
    name, _, nth = spec.partition("#")
    if name != point:
        return
    _kill_counts[point] = _kill_counts.get(point, 0) + 1
    if _kill_counts[point] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
