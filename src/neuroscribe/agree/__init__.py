"""Agreement between annotators: across simulators, across explainers, across units.

Definitions of every agreement kind are in ``AGREEMENT_KINDS``; undefined values are None with a
reason.
"""

from neuroscribe.agree.agree import (
    AGREEMENT_KINDS,
    SIMULATOR_SCALE,
    agree_across_units,
    agree_explainers,
    agree_unit,
    annotator_label,
    clarity,
)
from neuroscribe.agree.metrics import krippendorff_alpha_interval, rankdata, spearman

__all__ = [
    "AGREEMENT_KINDS",
    "SIMULATOR_SCALE",
    "agree_across_units",
    "agree_explainers",
    "agree_unit",
    "annotator_label",
    "clarity",
    "krippendorff_alpha_interval",
    "rankdata",
    "spearman",
]
