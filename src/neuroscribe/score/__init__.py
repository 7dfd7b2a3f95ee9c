"""Score explanations: how well a simulator's predictions from an explanation match the truth.

Definitions of every score kind are in ``SCORE_KINDS`` (from simulated activations) and
``FUZZ_KINDS`` (from fuzz verdicts); undefined values are None with a reason.
The controls' names are in ``controls``; the warehouse reads scores against them
(``neuroscribe.warehouse.reads.control_comparisons``).
"""

from neuroscribe.score.controls import (
    BASELINE_EXPLAINER,
    CONTROL_EXPLAINERS,
    SHUFFLED_CONTROL,
)
from neuroscribe.score.detection import (
    DETECTION_FRACTION,
    auroc,
    balanced_accuracy,
    choose_cut,
)
from neuroscribe.score.fuzz import FUZZ_KINDS, fuzz_scores
from neuroscribe.score.metrics import (
    MetricValue,
    bootstrap_ci,
    explained_variance_calibrated,
    pearson,
    pearson_pooled,
    rankdata,
)
from neuroscribe.score.score import SCORE_KINDS, score_explanation, validation_score

__all__ = [
    "BASELINE_EXPLAINER",
    "CONTROL_EXPLAINERS",
    "DETECTION_FRACTION",
    "FUZZ_KINDS",
    "SCORE_KINDS",
    "SHUFFLED_CONTROL",
    "MetricValue",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "choose_cut",
    "explained_variance_calibrated",
    "fuzz_scores",
    "pearson",
    "pearson_pooled",
    "rankdata",
    "score_explanation",
    "validation_score",
]
