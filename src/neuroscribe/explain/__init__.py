"""Explainers: from a unit's explain windows to one-sentence explanations.

``make_explainer("local/<model>" | "openai/<model>" | "fake/<name>" | "baseline/ngram", cfg)``
builds one; ``select_best`` keeps the best of several samples on the validation split.
"""

from __future__ import annotations

from neuroscribe.config import ExplainConfig
from neuroscribe.explain.base import Explainer, ExplainFailure
from neuroscribe.explain.llm import LLMExplainer, prompt_for
from neuroscribe.explain.ngram import NgramExplainer
from neuroscribe.explain.select import select_best
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.registry import LLM_BACKENDS, make_backend, split_name

BASELINE_EXPLAINERS = ("baseline/ngram",)

__all__ = ["ExplainFailure", "Explainer", "make_explainer", "select_best"]


def make_explainer(name: str, cfg: ExplainConfig, ledger: Ledger | None = None) -> Explainer:
    """The explainer named ``backend/model``; ValueError naming the valid backends otherwise."""
    backend, _ = split_name(name)
    if backend == "baseline":
        if name not in BASELINE_EXPLAINERS:
            raise ValueError(f"unknown baseline explainer '{name}'; valid: {BASELINE_EXPLAINERS}")
        return NgramExplainer()
    if backend not in LLM_BACKENDS:
        valid = ", ".join((*LLM_BACKENDS, "baseline"))
        raise ValueError(f"unknown explainer backend '{backend}' in '{name}'; valid: {valid}")
    prompt = prompt_for(cfg.format)
    backend = make_backend(name, ledger, "explain", prompt.sha, cfg.local_dtype)
    return LLMExplainer(name, backend, cfg, prompt)
