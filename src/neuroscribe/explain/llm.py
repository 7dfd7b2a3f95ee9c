"""Explainers backed by an LLM: render the unit's explain windows, sample n completions, parse.

The rendered prompt is pure (``render_messages``) and tested against expected files; the call
goes through the one backend interface; each completion is parsed into one sentence or a typed
failure. A failure's text is never used as an explanation.
"""

from __future__ import annotations

from collections.abc import Mapping

from neuroscribe.config import AnnotatorConfig, ExplainConfig
from neuroscribe.explain.base import (
    ExplainerPlugin,
    ExplainFailure,
    explain_windows,
    make_explanation,
)
from neuroscribe.explain.parse import ParseFailure, parse_explanation
from neuroscribe.explain.render import render_highlight, render_table
from neuroscribe.explain.samples import Sampler
from neuroscribe.ids import content_hash
from neuroscribe.llm.aio import LOOP
from neuroscribe.llm.base import Backend, ChatRequest, Ledger, Message
from neuroscribe.llm.factory import make_backend
from neuroscribe.llm.recorder import BackendError
from neuroscribe.prompts import Prompt, load_prompt
from neuroscribe.records import Explanation, UnitExamples, Window

PROMPTS = {"highlight": "explain_highlight", "table": "explain_table"}


def prompt_for(fmt: str) -> Prompt:
    return load_prompt(PROMPTS[fmt])


def render_messages(
    prompt: Prompt, fmt: str, unit: UnitExamples, windows: Mapping[str, Window]
) -> tuple[Message, ...] | None:
    """The chat messages for this unit, or None when no explain window fires."""
    shown = [(w.tokens, uw.activations) for uw, w in explain_windows(unit, windows)]
    examples = render_highlight(shown) if fmt == "highlight" else render_table(shown)
    if not examples:
        return None
    return prompt.render_messages(examples=examples)


class LLMExplainer:
    """``local/...``, ``openai/...`` or ``fake/...`` explainers."""

    def __init__(self, name: str, backend: Backend, cfg: ExplainConfig, prompt: Prompt) -> None:
        self.name = name
        self.backend = backend
        self.cfg = cfg
        self.prompt = prompt
        self.max_concurrency = backend.max_concurrency
        """Units ``explain_units`` may explain at once (the backend's limit)."""
        self.sampler = Sampler(backend)
        """Several samples per call, or one call per sample once the endpoint refused ``n``
        (remembered for every later unit of this explainer, which lives for the run)."""

    def explain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        return LOOP.run(self.aexplain(unit, windows, n, seed))

    async def aexplain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """Render, call (``Backend.achat``, through ``Sampler`` for ``n > 1``), parse."""
        messages = render_messages(self.prompt, self.cfg.format, unit, windows)
        params = {
            "format": self.cfg.format,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "n": n,
            "seed": seed,
            "input": content_hash([m.model_dump() for m in messages or ()]),
        }
        ref = self.prompt.ref

        def failed(i: int, kind: ExplainFailure) -> Explanation:
            return make_explanation(unit, self.name, ref, i, params, failure=kind)

        if messages is None:
            return [failed(i, ExplainFailure.NO_EXAMPLES) for i in range(n)]
        request = ChatRequest(
            messages=messages,
            temperature=self.cfg.temperature,
            max_tokens=self.cfg.max_tokens,
            n=n,
            seed=seed,
        )
        try:
            texts = await self.sampler.texts(request)
        except BackendError:
            return [failed(i, ExplainFailure.BACKEND_ERROR) for i in range(n)]
        out = []
        for i in range(n):
            sample = texts[i] if i < len(texts) else None
            if sample is None:  # not returned, or this sample's own call failed
                missing = i >= len(texts)
                out.append(failed(i, ExplainFailure.MISSING_SAMPLE if missing
                                  else ExplainFailure.BACKEND_ERROR))
                continue
            try:
                text = parse_explanation(sample)
            except ParseFailure as e:
                out.append(failed(i, ExplainFailure(e.kind)))
                continue
            out.append(make_explanation(unit, self.name, ref, i, params, text=text))
        return out


def make_llm_explainer(
    name: str,
    cfg: ExplainConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> LLMExplainer:
    """An LLM backend's explainer (``<backend>/*`` in ``registry.EXPLAINERS``). ``annotator``
    (``RunConfig.annotators.get(name)``) overrides temperature and max tokens and sets the
    backend's concurrency, timeouts, retries and prices."""
    if annotator is not None:
        overrides = {"temperature": annotator.temperature, "max_tokens": annotator.max_tokens}
        cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    prompt = prompt_for(cfg.format)
    backend = make_backend(name, ledger, "explain", prompt.sha, cfg.local_dtype, annotator)
    return LLMExplainer(name, backend, cfg, prompt)


PLUGIN = ExplainerPlugin(make=make_llm_explainer)
"""The entry of ``registry.EXPLAINERS``."""
