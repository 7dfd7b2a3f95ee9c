"""Progress off a terminal: plain lines, and a sign of life while a slow step runs."""

from __future__ import annotations

import re
import threading
import time

from neuroscribe import progress


def test_log_reporter_writes_start_heartbeat_and_end_lines():
    lines: list[str] = []
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            lines.append(line)

    progress.set_reporter(progress.LogReporter(write, every_s=0.05))
    try:
        with progress.task("explain  fake/x", 4) as advance:
            advance(1)
            time.sleep(0.3)  # a slow step: the heartbeat still reports
            advance(3)
        assert list(progress.track([1, 2], "score")) == [1, 2]
    finally:
        progress.set_reporter(None)
    assert lines[0] == "explain  fake/x: started, 4 to do"
    beats = [s for s in lines if re.match(r"explain  fake/x: 1/4 \(25%\), 0:00:00 elapsed", s)]
    assert len(beats) >= 2
    assert "about 0:00:0" in beats[0]  # an estimate of the time left
    assert re.match(r"explain  fake/x: 4/4 in 0:00:00", lines[len(lines) - 3])
    assert lines[-2:] == ["score: started, 2 to do", lines[-1]]
    assert lines[-1].startswith("score: 2/2 in ")
    n = len(lines)
    time.sleep(0.2)
    assert len(lines) == n  # no heartbeat once nothing runs


def test_the_default_reporter_is_silent():
    with progress.task("anything", 3) as advance:
        advance(3)


def test_a_step_logs_its_start_and_end_and_beats_while_it_runs():
    lines: list[str] = []
    progress.set_reporter(progress.LogReporter(lines.append, every_s=0.05))
    try:
        with progress.step("score: read the units", 9216):
            time.sleep(0.2)  # a long read: no loop of its own to report
    finally:
        progress.set_reporter(None)
    assert lines[0] == "score: read the units: started, 9216 to do"
    assert any(re.match(r"score: read the units: 0/9216 \(0%\), 0:00:00 elapsed", s) for s in lines)
    assert re.match(r"score: read the units: 9216/9216 in 0:00:00", lines[-1])
