"""Settings read from the environment."""

from __future__ import annotations

import os


def env_seconds(given: float | None, variable: str, default: float) -> float:
    """A duration in seconds, at least 0: ``given``, else the environment ``variable``, else
    ``default``. ValueError naming the variable when it is set to something not a number."""
    if given is not None:
        return max(0.0, given)
    value = os.environ.get(variable)
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"${variable} must be a number of seconds, not {value!r}") from None
