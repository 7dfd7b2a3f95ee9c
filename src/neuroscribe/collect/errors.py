"""The collect stage's one error type."""

from __future__ import annotations

from collections.abc import Sequence

from neuroscribe.errors import BadInput


class CollectError(BadInput):
    """Bad input to the collect stage (corpus, site, units, window size); the message names it."""


def few(values: Sequence[int], shown: int = 10) -> str:
    """A list of indices for a message: all of them, or the first ``shown`` and how many more."""
    if len(values) <= shown:
        return str(list(values))
    head = ", ".join(map(str, values[:shown]))
    return f"[{head}, ... and {len(values) - shown} more]"
