"""Explainers: from a unit's explain windows to one-sentence explanations.

``make_explainer(name, cfg)`` builds the explainer registered under ``name`` in
``registry.EXPLAINERS`` (``baseline/ngram``, or an LLM backend's ``local/<model>``,
``openai/<model>``, ``fake/<script>``); ``explain_units`` runs every configured explainer over a
run's units, several units in flight up to the annotator's limit; ``select_best`` keeps the best
of several samples on the validation split; ``silent_annotators`` names the explainers that
produced nothing usable (every sample failed).
"""

from neuroscribe.explain.base import Explainer, ExplainerPlugin, ExplainFailure
from neuroscribe.explain.factory import check_explainer_name, explainer_names, make_explainer
from neuroscribe.explain.select import select_best
from neuroscribe.explain.units import (
    explain_many,
    explain_units,
    shuffled_controls,
    silent_annotators,
)

__all__ = [
    "ExplainFailure", "Explainer", "ExplainerPlugin", "check_explainer_name", "explain_many",
    "explain_units", "explainer_names", "make_explainer", "select_best", "shuffled_controls",
    "silent_annotators",
]
