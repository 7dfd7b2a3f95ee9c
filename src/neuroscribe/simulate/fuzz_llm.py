"""The fuzz judge of LLM simulators (``local/...``, ``openai/...``, ``fake/...``): the ``fuzz``
prompt, one call per marked window, the answer read by capability (see ``simulate.fuzz``).

With prompt distributions (in-process models) every marked window of an explanation goes to the
backend at once (``simulate.all_at_once.distributions_batch``), batched in its forward passes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np

from neuroscribe.llm.base import Backend, ChatRequest, Message
from neuroscribe.llm.fanout import fan_out
from neuroscribe.llm.recorder import BackendError
from neuroscribe.prompts import Prompt, load_prompt
from neuroscribe.records import Explanation, Window
from neuroscribe.simulate.all_at_once import distributions_batch
from neuroscribe.simulate.fuzz import (
    ANSWER_SCHEMA,
    ANSWERS,
    FuzzFailure,
    FuzzItem,
    FuzzVerdict,
    failed_verdict,
    marked_text,
    parse_answer,
    verdict,
)

PROMPT = "fuzz"


class LLMFuzzJudge:
    """``local/...``, ``openai/...`` and ``fake/...``: the ``fuzz`` prompt, one call per item."""

    def __init__(
        self, name: str, backend: Backend, prompt: Prompt | None = None, temperature: float = 0.0
    ) -> None:
        self.name = name
        self.backend = backend
        self.prompt = prompt or load_prompt(PROMPT)
        self.temperature = temperature
        caps = backend.capabilities
        self.unavailable: dict[str, str] = {}
        if not (caps.prompt_distributions or caps.logprobs):
            self.unavailable["fuzz_auroc"] = (
                f"no probabilities: {name} answers yes or no without logprobs"
            )

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        if self.backend.capabilities.prompt_distributions:
            return self._judge_from_distributions(explanation, items, windows)
        # Endpoints serve requests in parallel; scripted backends run in order.
        return fan_out(
            lambda item: self.judge_one(explanation, item, windows[item.window_id]),
            items,
            self.backend.max_concurrency,
        )

    def messages(
        self, explanation: str, tokens: Sequence[str], marked: Sequence[int]
    ) -> tuple[Message, ...]:
        return self.prompt.render_messages(
            explanation=explanation, text=marked_text(tokens, marked)
        )

    async def judge_one(
        self, explanation: Explanation, item: FuzzItem, window: Window
    ) -> FuzzVerdict:
        ref = self.prompt.ref
        if explanation.status != "ok" or not explanation.text:
            return failed_verdict(explanation, self.name, item, FuzzFailure.NO_EXPLANATION, ref)
        caps = self.backend.capabilities
        if caps.prompt_distributions:
            (one,) = await asyncio.to_thread(
                self._judge_from_distributions, explanation, [item], {item.window_id: window}
            )
            return one
        messages = self.messages(explanation.text, window.tokens, item.marked)
        try:
            if caps.logprobs:
                answer, confidence, failure = await self._from_logprobs(messages)
            else:
                answer, confidence, failure = await self._from_text(messages)
        except BackendError:
            return failed_verdict(explanation, self.name, item, FuzzFailure.BACKEND_ERROR, ref)
        if failure is not None:
            return failed_verdict(explanation, self.name, item, failure, ref)
        return verdict(
            explanation, self.name, item, answer=answer, confidence=confidence, prompt=ref
        )

    def _judge_from_distributions(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        """Every item's p(yes) from the next-token distribution after its prompt, all prompts
        in one batch."""
        ref = self.prompt.ref
        if explanation.status != "ok" or not explanation.text:
            return [
                failed_verdict(explanation, self.name, item, FuzzFailure.NO_EXPLANATION, ref)
                for item in items
            ]
        texts = [
            self.backend.format_chat(
                self.messages(explanation.text, windows[item.window_id].tokens, item.marked),
                False,
            )
            for item in items
        ]
        answers = distributions_batch(self.backend, [(t, [len(t)]) for t in texts], ANSWERS)
        out = []
        for item, answer in zip(items, answers, strict=True):
            if isinstance(answer, BackendError):
                out.append(
                    failed_verdict(explanation, self.name, item, FuzzFailure.BACKEND_ERROR, ref)
                )
                continue
            if isinstance(answer, Exception):
                raise answer  # the prompt's end is always a token boundary: a bug
            p_yes, p_no = answer[0].get("yes", 0.0), answer[0].get("no", 0.0)
            if not p_yes + p_no > 0:
                out.append(
                    failed_verdict(explanation, self.name, item, FuzzFailure.NO_ANSWER_MASS, ref)
                )
                continue
            confidence = p_yes / (p_yes + p_no)
            out.append(
                verdict(
                    explanation,
                    self.name,
                    item,
                    answer=confidence > 0.5,
                    confidence=confidence,
                    prompt=ref,
                )
            )
        return out

    async def _from_logprobs(
        self, messages: tuple[Message, ...]
    ) -> tuple[bool | None, float | None, FuzzFailure | None]:
        request = ChatRequest(
            messages=messages, temperature=self.temperature, max_tokens=2, top_logprobs=5
        )
        response = await self.backend.achat(request)
        mass = {"yes": 0.0, "no": 0.0}
        steps = response.logprobs[0] if response.logprobs else ()
        for token, logprob in steps[0].top if steps else ():
            word = token.strip().lower()
            if word in mass:
                mass[word] += float(np.exp(logprob))
        if mass["yes"] + mass["no"] > 0:
            confidence = mass["yes"] / (mass["yes"] + mass["no"])
            return confidence > 0.5, confidence, None
        answer = parse_answer(response.texts[0])
        return answer, None, FuzzFailure.UNPARSEABLE if answer is None else None

    async def _from_text(
        self, messages: tuple[Message, ...]
    ) -> tuple[bool | None, float | None, FuzzFailure | None]:
        schema = ANSWER_SCHEMA if self.backend.capabilities.json_schema else None
        request = ChatRequest(
            messages=messages, temperature=self.temperature, max_tokens=16, json_schema=schema
        )
        answer = parse_answer((await self.backend.achat(request)).texts[0])
        return answer, None, FuzzFailure.UNPARSEABLE if answer is None else None
