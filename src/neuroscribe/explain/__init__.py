"""Explainers: from a unit's explain windows to one-sentence explanations.

``make_explainer(name, cfg)`` builds the explainer registered under ``name`` in
``registry.EXPLAINERS`` (``baseline/ngram``, or an LLM backend's ``local/<model>``,
``openai/<model>``, ``fake/<script>``); ``explain_many`` runs one over many units, several in
flight up to the annotator's limit; ``select_best`` keeps the best of several samples on the
validation split. The stage over a run's units, which also simulates for best-of-n, is
``neuroscribe.explain.units.explain_units`` (not imported here: it depends on ``simulate``).
"""

from neuroscribe.explain.base import Explainer, ExplainerPlugin, ExplainFailure
from neuroscribe.explain.factory import make_explainer
from neuroscribe.explain.many import explain_many
from neuroscribe.explain.select import select_best

__all__ = [
    "ExplainFailure", "Explainer", "ExplainerPlugin", "explain_many",
    "make_explainer", "select_best",
]
