"""Explainers by name: ``make_explainer`` reads ``registry.EXPLAINERS`` (which also checks
names: ``EXPLAINERS.check``)."""

from __future__ import annotations

from neuroscribe.config import AnnotatorConfig, ExplainConfig
from neuroscribe.explain.base import Explainer, ExplainerPlugin
from neuroscribe.llm.base import Ledger
from neuroscribe.registry import EXPLAINERS


def make_explainer(
    name: str,
    cfg: ExplainConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> Explainer:
    """The explainer named ``backend/model``; ValueError naming the valid ones otherwise.
    ``annotator`` (``RunConfig.annotators.get(name)``) overrides temperature and max tokens and
    sets the backend's concurrency, timeouts, retries and prices."""
    EXPLAINERS.check(name)
    return EXPLAINERS.get_as(name, ExplainerPlugin).make(name, cfg, ledger, annotator)
