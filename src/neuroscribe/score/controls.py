"""The controls every annotator is read against: does it beat chance on a unit?

Two controls go through the same simulators and scorers as every explanation: the shuffled
control (another unit's explanation, explainer ``control/shuffled``) and the n-gram baseline
explainer (``baseline/ngram``). The comparison itself is defined once, in SQL: the view
``control_comparison_units`` (warehouse/views/control_comparison_units.sql) holds the rules,
``control_comparison`` counts them per subject, site and SAE, and
``neuroscribe.warehouse.reads.control_comparisons`` counts them for one run's explanations.
"""

from __future__ import annotations

SHUFFLED_CONTROL = "control/shuffled"
BASELINE_EXPLAINER = "baseline/ngram"
