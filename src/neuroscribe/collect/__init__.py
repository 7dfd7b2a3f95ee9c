"""Collect stage: top-activating, random and held-out windows of a subject model's units."""

from neuroscribe.collect.collect import CollectResult, collect, validate_inputs
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.splits import check_disjoint

__all__ = ["CollectError", "CollectResult", "check_disjoint", "collect", "validate_inputs"]
