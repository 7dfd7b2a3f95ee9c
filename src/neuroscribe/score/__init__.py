"""Score explanations: how well a simulator's predictions from an explanation match the truth.

Definitions of every score kind are in ``SCORE_KINDS``; undefined values are None with a reason.
"""

from neuroscribe.score.metrics import (
    MetricValue,
    bootstrap_ci,
    explained_variance_calibrated,
    pearson,
    pearson_pooled,
)
from neuroscribe.score.score import SCORE_KINDS, score_explanation, validation_score

__all__ = [
    "SCORE_KINDS",
    "MetricValue",
    "bootstrap_ci",
    "explained_variance_calibrated",
    "pearson",
    "pearson_pooled",
    "score_explanation",
    "validation_score",
]
