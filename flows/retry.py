"""When a failed task of the flows is tried again: any failure but bad input."""

from __future__ import annotations

from typing import Any

from neuroscribe.errors import BadInput


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: bad input (``neuroscribe.errors.BadInput``: config,
    corpus, model, endpoint check) is never retried; any other failure is (a lost worker, a
    flaky endpoint, a garbled response's ValueError)."""
    try:
        state.result()
    except BadInput:
        return False
    except Exception:
        return True
    return True


TASK_RETRIES = 2
"""Retries of a failed stage task. Safe: warehouse rows are content-keyed and written with
INSERT OR IGNORE in one transaction per stage, and LLM calls already stored are answered from the
cache (a Dask chunk writes nothing at all)."""

RETRY: dict[str, Any] = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": 10,
    "retry_condition_fn": retry_unless_bad_input,
}
"""The retry settings of every task of the flows: stage tasks, Dask chunks, compare and audit."""
