"""Explainers: from a unit's explain windows to one-sentence explanations.

``make_explainer("local/<model>" | "openai/<model>" | "fake/<name>" | "baseline/ngram", cfg)``
builds one; ``explain_all`` runs it over many units (concurrently up to the annotator's limit);
``select_best`` keeps the best of several samples on the validation split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from neuroscribe.config import AnnotatorConfig, ExplainConfig
from neuroscribe.explain.base import Explainer, ExplainFailure
from neuroscribe.explain.llm import LLMExplainer, prompt_for
from neuroscribe.explain.ngram import NgramExplainer
from neuroscribe.explain.select import select_best
from neuroscribe.llm.aio import LOOP, map_bounded
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.registry import LLM_BACKENDS, make_backend, split_name
from neuroscribe.records import Explanation, UnitExamples, Window

BASELINE_EXPLAINERS = ("baseline/ngram",)

__all__ = [
    "ExplainFailure", "Explainer", "check_explainer_name", "explain_all", "explainer_names",
    "make_explainer", "select_best",
]


def explainer_names() -> tuple[str, ...]:
    """Every valid explainer name, as users write them (``<model>`` is any model)."""
    return (*(f"{b}/<model>" for b in LLM_BACKENDS if b != "fake"), *BASELINE_EXPLAINERS,
            "fake/<script>")


def check_explainer_name(name: str) -> None:
    """ValueError naming ``name`` and listing the valid explainers unless ``make_explainer``
    knows it (no I/O; the preflight and the factory ask the same tables)."""
    backend, sep, model = name.partition("/")
    known = backend in LLM_BACKENDS and model if backend != "baseline" else (
        name in BASELINE_EXPLAINERS)
    if not (sep and known):
        backends = ", ".join((*LLM_BACKENDS, "baseline"))
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
    """The explainer named ``backend/model``; ValueError naming the valid backends otherwise.
    ``annotator`` (``RunConfig.annotators.get(name)``) overrides temperature and max tokens and
    sets the backend's concurrency, timeouts, retries and prices."""
    check_explainer_name(name)
    backend, _ = split_name(name)
    if backend == "baseline":
        return NgramExplainer()
    if annotator is not None:
        overrides = {"temperature": annotator.temperature, "max_tokens": annotator.max_tokens}
        cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    prompt = prompt_for(cfg.format)
    backend = make_backend(name, ledger, "explain", prompt.sha, cfg.local_dtype, annotator)
    return LLMExplainer(name, backend, cfg, prompt)


def explain_all(
    explainer: Explainer,
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    n: int,
    seeds: Sequence[int],
) -> list[list[Explanation]]:
    """``explainer.explain(units[i], windows, n, seeds[i])`` for every unit, in order, with up
    to the backend's ``max_concurrency`` units in flight (1 for in-process and scripted ones).
    A unit's failure is its own typed failure; it never stops the others. An explainer whose
    backend runs on the event loop (``asynchronous``) is awaited there, units as coroutines."""
    workers = min(getattr(explainer, "max_concurrency", 1), len(units))
    if getattr(explainer, "asynchronous", False):
        return LOOP.run(map_bounded(
            lambda us: explainer.aexplain(us[0], windows, n, us[1]),  # type: ignore[attr-defined]
            list(zip(units, seeds, strict=True)), workers,
        ))
    if workers <= 1:
        return [explainer.explain(u, windows, n, s) for u, s in zip(units, seeds, strict=True)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda us: explainer.explain(us[0], windows, n, us[1]),
                             zip(units, seeds, strict=True)))
