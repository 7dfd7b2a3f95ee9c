"""Score explanations: how well a simulator's predictions from an explanation match the truth.

Every score kind computed from simulated activations is a ``ScoreKind`` (name, definition,
evaluation splits, metric) registered in ``registry.SCORE_KINDS`` (re-exported here); fuzzing's
kinds, computed from verdicts, are ``FUZZ_KINDS``. Undefined values are None with a reason.
``score_units`` scores a run's simulations. The controls' names are in ``controls``; the
warehouse reads scores against them (``neuroscribe.warehouse.reads.control_comparisons``).
"""

from neuroscribe.registry import HEADLINE_SCORE, SCORE_KINDS
from neuroscribe.score.controls import (
    BASELINE_EXPLAINER,
    SHUFFLED_CONTROL,
)
from neuroscribe.score.detection import (
    DETECTION_FRACTION,
    auroc,
    balanced_accuracy,
    choose_cut,
)
from neuroscribe.score.fuzz import FUZZ_KINDS, fuzz_scores
from neuroscribe.score.kinds import Prepared, ScoreKind, ScoringContext
from neuroscribe.score.metrics import (
    MetricValue,
    bootstrap_ci,
    explained_variance_calibrated,
    pearson,
    pearson_pooled,
    rankdata,
)
from neuroscribe.score.score import (
    score_definitions,
    score_explanation,
    score_kinds,
    validation_score,
)
from neuroscribe.score.units import score_units

__all__ = [
    "BASELINE_EXPLAINER",
    "DETECTION_FRACTION",
    "FUZZ_KINDS",
    "HEADLINE_SCORE",
    "SCORE_KINDS",
    "SHUFFLED_CONTROL",
    "MetricValue",
    "Prepared",
    "ScoreKind",
    "ScoringContext",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "choose_cut",
    "explained_variance_calibrated",
    "fuzz_scores",
    "pearson",
    "pearson_pooled",
    "rankdata",
    "score_definitions",
    "score_explanation",
    "score_kinds",
    "score_units",
    "validation_score",
]
