"""The collect stage's one error type."""

from __future__ import annotations


class CollectError(ValueError):
    """Bad input to the collect stage (corpus, site, units, window size); the message names it."""
