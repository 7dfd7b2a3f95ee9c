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
