"""Agreement between annotators: across simulators, across explainers, across units.

Definitions of every agreement kind are in ``AGREEMENT_KINDS``; undefined values are None with a
reason. ``agree_units`` runs every agreement of a run.
"""

from neuroscribe.agree.agree import (
    AGREEMENT_KINDS,
    CLARITY_COMPONENTS,
    SIMULATOR_SCALE,
    agree_across_units,
    agree_explainers,
    agree_unit,
    annotator_label,
    clarity,
    ratings_matrix,
)
from neuroscribe.agree.control import agree_with_control, kappa
from neuroscribe.agree.metrics import krippendorff_alpha_interval, rankdata, spearman
from neuroscribe.agree.overall import agree_overall
from neuroscribe.agree.texts import agree_explanation_texts
from neuroscribe.agree.units import agree_units

__all__ = [
    "AGREEMENT_KINDS",
    "CLARITY_COMPONENTS",
    "SIMULATOR_SCALE",
    "agree_across_units",
    "agree_explainers",
    "agree_explanation_texts",
    "agree_overall",
    "agree_unit",
    "agree_units",
    "agree_with_control",
    "annotator_label",
    "clarity",
    "kappa",
    "krippendorff_alpha_interval",
    "rankdata",
    "ratings_matrix",
    "spearman",
]
