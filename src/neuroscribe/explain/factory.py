"""Explainers by name: ``make_explainer`` and the name checks, read from ``registry.EXPLAINERS``."""

from __future__ import annotations

from neuroscribe.config import AnnotatorConfig, ExplainConfig
from neuroscribe.explain.base import Explainer, ExplainerPlugin
from neuroscribe.llm.base import Ledger
from neuroscribe.registry import EXPLAINERS, LLM_BACKENDS


def explainer_names() -> tuple[str, ...]:
    """Every valid explainer name, as users write them (``<model>`` is any model; scripted
    ``fake/<script>`` last, since only tests register scripts)."""
    names = EXPLAINERS.names()
    return (*(n for n in names if not n.startswith("fake/")),
            *(n for n in names if n.startswith("fake/")))


def check_explainer_name(name: str) -> None:
    """ValueError naming ``name`` and listing the valid explainers unless ``make_explainer``
    knows it (no I/O; the preflight and the factory ask the same table)."""
    if name not in EXPLAINERS:
        backends = ", ".join(dict.fromkeys([*LLM_BACKENDS, *(k.split("/")[0] for k in EXPLAINERS)]))
        raise ValueError(
            f"unknown explainer '{name}': names are backend/model (valid: {backends}); "
            f"valid explainers: {', '.join(explainer_names())}"
        )


def make_explainer(
    name: str,
    cfg: ExplainConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> Explainer:
    """The explainer named ``backend/model``; ValueError naming the valid ones otherwise.
    ``annotator`` (``RunConfig.annotators.get(name)``) overrides temperature and max tokens and
    sets the backend's concurrency, timeouts, retries and prices."""
    check_explainer_name(name)
    return EXPLAINERS.get_as(name, ExplainerPlugin).make(name, cfg, ledger, annotator)
