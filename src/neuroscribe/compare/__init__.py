"""Comparing models unit by unit: streaming cross-correlation and CKA, and matching."""

from neuroscribe.compare.match import (
    Matching,
    Partners,
    best_partners,
    decoder_cosine,
    one_to_one,
    universality,
)
from neuroscribe.compare.stats import CrossCorrelation, LinearCKA

__all__ = [
    "CrossCorrelation",
    "LinearCKA",
    "Matching",
    "Partners",
    "best_partners",
    "decoder_cosine",
    "one_to_one",
    "universality",
]
