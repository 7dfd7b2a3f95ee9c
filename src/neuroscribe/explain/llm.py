"""Explainers backed by an LLM: render the unit's explain windows, sample n completions, parse.

The rendered prompt is pure (``render_messages``) and tested against expected files; the call
goes through the one backend interface; each completion is parsed into one sentence or a typed
failure. A failure's text is never used as an explanation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from neuroscribe.config import ExplainConfig
from neuroscribe.explain.base import ExplainFailure, explain_windows, make_explanation
from neuroscribe.explain.parse import ParseFailure, parse_explanation
from neuroscribe.explain.render import render_highlight, render_table
from neuroscribe.ids import content_hash
from neuroscribe.llm.aio import LOOP, run_inline
from neuroscribe.llm.base import Backend, ChatRequest, ChatResponse, Message
from neuroscribe.llm.registry import BackendError
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
        self.max_concurrency: int = getattr(backend, "max_concurrency", 1)
        """Units ``explain_all`` may explain at once (the backend's limit)."""
        self.asynchronous: bool = callable(getattr(backend, "achat", None))
        """The backend runs on the event loop (``achat``): ``explain_all`` awaits ``aexplain``
        there instead of calling ``explain`` from a thread pool."""

    def explain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        if self.asynchronous:
            return LOOP.run(self.aexplain(unit, windows, n, seed))

        async def chat(request: ChatRequest) -> ChatResponse:
            return self.backend.chat(request)

        return run_inline(self._explain(unit, windows, n, seed, chat))

    async def aexplain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """``explain`` on the event loop (only when ``asynchronous``)."""
        return await self._explain(unit, windows, n, seed, self.backend.achat)  # type: ignore[attr-defined]

    async def _explain(
        self,
        unit: UnitExamples,
        windows: Mapping[str, Window],
        n: int,
        seed: int,
        chat: Callable[[ChatRequest], Awaitable[ChatResponse]],
    ) -> list[Explanation]:
        """Render, call, parse: written once for both kinds of backend."""
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
            texts = (await chat(request)).texts
        except BackendError:
            return [failed(i, ExplainFailure.BACKEND_ERROR) for i in range(n)]
        out = []
        for i in range(n):
            if i >= len(texts):
                out.append(failed(i, ExplainFailure.MISSING_SAMPLE))
                continue
            try:
                text = parse_explanation(texts[i])
            except ParseFailure as e:
                out.append(failed(i, ExplainFailure(e.kind)))
                continue
            out.append(make_explanation(unit, self.name, ref, i, params, text=text))
        return out
