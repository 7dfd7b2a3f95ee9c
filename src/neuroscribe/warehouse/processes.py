"""Which process runs a run, and whether that process is gone.

A run records its process id, host and the process's start time. On the same host, a run whose
process id is dead, a zombie, or now belongs to a process started at another time (a reused id)
is gone. On another host nothing can be told, so such a run is never called gone.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

START_TOLERANCE_S = 1.0
"""Two start times this close are the same process (the clock tick is 10 ms)."""


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    host: str
    started: float | None
    """Seconds since the epoch; None where the system does not tell (not Linux)."""


def this_process() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(pid, socket.gethostname(), process_start(pid))


@functools.cache
def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the third (the state) on; None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the name in (...) may hold spaces


def process_start(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch; None where unknown."""
    fields, boot = _stat_fields(pid), _boot_time()
    if fields is None or boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, in clock ticks


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    fields = _stat_fields(pid)
    return not (fields and fields[0] in ("Z", "X"))  # a zombie has ended, only not been reaped


def is_gone(pid: int | None, host: str | None, started: float | None) -> bool:
    """True when the process recorded as (``pid``, ``host``, ``started``) has certainly ended:
    same host, and its pid is dead or reused by a process that started at another time."""
    if pid is None or host != socket.gethostname():
        return False
    if not _alive(pid):
        return True
    now_started = process_start(pid)
    return (
        started is not None
        and now_started is not None
        and abs(now_started - started) > START_TOLERANCE_S
    )
