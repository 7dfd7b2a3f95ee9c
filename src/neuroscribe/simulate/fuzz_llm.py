"""The fuzz judge of LLM simulators (``local/...``, ``openai/...``, ``fake/...``): the ``fuzz``
prompt, one call per marked window, the answer read by capability (see ``simulate.fuzz``).

With prompt distributions (in-process models) every marked window of an explanation goes to the
backend at once (``simulate.all_at_once.distributions_batch``), batched in its forward passes.
Otherwise, with ``batch`` above 1 (``AnnotatorConfig.fuzz_batch``) and an endpoint that enforces
JSON schemas, one call judges up to ``batch`` marked windows of one explanation (the
``fuzz_batch`` prompt, ``{"answers": ["yes" | "no", ...]}``); no call holds two markings of the
same window, so a text is never judged against another marking of itself (``batch_groups``).
With logprobs, each answer's probability is read at its answer token. ``judge_many`` hands the
calls of many explanations to one pool of the backend's ``max_concurrency``, so units do not
wait for each other.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

import numpy as np

from neuroscribe.llm.base import (
    Backend,
    ChatRequest,
    Message,
    TokenLogprobs,
    for_unit,
    in_unit,
)
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
    FuzzJudgeBase,
    FuzzVerdict,
    failed_verdict,
    marked_text,
    parse_answer,
    verdict,
)

PROMPT = "fuzz"
BATCH_PROMPT = "fuzz_batch"


def batch_groups(items: Sequence[FuzzItem], batch: int) -> list[list[FuzzItem]]:
    """``items`` in calls of at most ``batch``, no two items of one window in a call: the k-th
    window's j-th item goes to round ``(j + k) % (its items)``, so each round mixes correct and
    incorrect marks; each round is cut into calls of ``batch``."""
    by_window: dict[str, list[FuzzItem]] = {}
    for item in items:
        by_window.setdefault(item.window_id, []).append(item)
    rounds: dict[int, list[FuzzItem]] = {}
    for k, mine in enumerate(by_window.values()):
        for j, item in enumerate(mine):
            rounds.setdefault((j + k) % len(mine), []).append(item)
    return [
        group[i : i + batch]
        for _, group in sorted(rounds.items())
        for i in range(0, len(group), batch)
    ]


def batch_schema(n: int) -> dict[str, object]:
    """``{"answers": [...]}`` with exactly ``n`` yes/no answers (strict-mode compatible)."""
    answers = {"type": "array", "items": {"type": "string", "enum": list(ANSWERS)},
               "minItems": n, "maxItems": n}
    return {"type": "object", "properties": {"answers": answers}, "required": ["answers"],
            "additionalProperties": False}


def parse_batch(text: str, n: int) -> list[bool] | None:
    """The ``n`` answers of a batched verdict, in order; None when the answer is not JSON of
    that shape (every item of the call is then ``unparseable``)."""
    body = text.strip()
    start, end = body.find("{"), body.rfind("}")
    try:
        answers = json.loads(body[start : end + 1])["answers"] if 0 <= start < end else None
    except (json.JSONDecodeError, TypeError, KeyError):
        return None
    if not isinstance(answers, list) or len(answers) != n:
        return None
    words = [a.strip().lower() if isinstance(a, str) else None for a in answers]
    if not all(w in ANSWERS for w in words):
        return None
    return [w == "yes" for w in words]


def answer_confidences(steps: Sequence[TokenLogprobs], n: int) -> list[float] | None:
    """P(yes) of each of ``n`` answers, read at the generated tokens that spell an answer word
    (quotes and spaces aside) from their top logprobs; None unless exactly ``n`` such tokens
    carry probability on either word."""
    found: list[float] = []
    for step in steps:
        if step.token.strip().strip('"').lower() not in ANSWERS:
            continue
        mass = {"yes": 0.0, "no": 0.0}
        for token, logprob in step.top:
            word = token.strip().strip('"').lower()
            if word in mass:
                mass[word] += float(np.exp(logprob))
        if mass["yes"] + mass["no"] > 0:
            found.append(mass["yes"] / (mass["yes"] + mass["no"]))
    return found if len(found) == n else None


class LLMFuzzJudge(FuzzJudgeBase):
    """``local/...``, ``openai/...`` and ``fake/...``: the ``fuzz`` prompt, one call per item, or
    the ``fuzz_batch`` prompt, up to ``batch`` items per call, where the backend enforces JSON
    schemas and has no next-token distributions."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        prompt: Prompt | None = None,
        temperature: float = 0.0,
        batch: int = 1,
    ) -> None:
        self.name = name
        self.backend = backend
        caps = backend.capabilities
        self.batch = batch if caps.json_schema and not caps.prompt_distributions else 1
        """Items per call (1 where the backend cannot answer a batch in a schema)."""
        self.prompt = prompt or load_prompt(BATCH_PROMPT if self.batch > 1 else PROMPT)
        self.temperature = temperature
        self.max_concurrency = backend.max_concurrency
        self.unavailable: dict[str, str] = {}
        if not (caps.prompt_distributions or caps.logprobs):
            self.unavailable["fuzz_auroc"] = (
                f"no probabilities: {name} answers yes or no without logprobs"
            )

    @property
    def batch_jobs(self) -> int:
        """Explanations per ``judge_many`` call: twice the concurrency, their calls pooled."""
        return 2 * self.max_concurrency

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        if self.backend.capabilities.prompt_distributions:
            return self._judge_from_distributions(explanation, items, windows)
        return self.judge_many([(explanation, items)], windows)[0]

    def judge_many(
        self,
        jobs: Sequence[tuple[Explanation, Sequence[FuzzItem]]],
        windows: Mapping[str, Window],
    ) -> list[list[FuzzVerdict]]:
        """``judge`` for every (explanation, items) job, in order, the calls of every job in
        one pool: endpoints serve requests in parallel; in-process and scripted backends
        (``max_concurrency`` 1) run in order; in-process models with prompt distributions
        batch each explanation's windows in their forward passes."""
        if self.backend.capabilities.prompt_distributions:
            out = []
            for e, items in jobs:
                with for_unit(e.unit_key):
                    out.append(self._judge_from_distributions(e, items, windows))
            return out
        calls = [
            (i, e, group)
            for i, (e, items) in enumerate(jobs)
            for group in (batch_groups(items, self.batch) if self.batch > 1 else
                          [[item] for item in items])
        ]
        done = fan_out(
            lambda c: in_unit(c[1].unit_key, self._judge_call(c[1], c[2], windows)),
            calls,
            self.max_concurrency,
        )
        verdicts: list[dict[FuzzItem, FuzzVerdict]] = [{} for _ in jobs]
        for (i, _, group), result in zip(calls, done, strict=True):
            verdicts[i].update(zip(group, result, strict=True))
        return [[mine[item] for item in items] for mine, (_, items) in zip(verdicts, jobs,
                                                                          strict=True)]

    async def _judge_call(
        self, explanation: Explanation, group: list[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        if self.batch > 1:
            return await self.judge_batch(explanation, group, windows)
        return [await self.judge_one(explanation, group[0], windows[group[0].window_id])]

    def batch_messages(
        self, explanation: str, texts: Sequence[tuple[Sequence[str], Sequence[int]]]
    ) -> tuple[Message, ...]:
        framed = "\n".join(
            f"<text {k}>\n{marked_text(tokens, marked)}\n</text {k}>"
            for k, (tokens, marked) in enumerate(texts, start=1)
        )
        return self.prompt.render_messages(
            explanation=explanation, n_texts=str(len(texts)), texts=framed
        )

    async def judge_batch(
        self, explanation: Explanation, group: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        """One call for ``group`` (the ``fuzz_batch`` prompt); a failed or unreadable answer is
        the typed failure of every item in it."""
        ref = self.prompt.ref

        def failed(kind: FuzzFailure) -> list[FuzzVerdict]:
            return [failed_verdict(explanation, self.name, it, kind, ref) for it in group]

        if explanation.status != "ok" or not explanation.text:
            return failed(FuzzFailure.NO_EXPLANATION)
        texts = [(windows[it.window_id].tokens, it.marked) for it in group]
        logprobs = self.backend.capabilities.logprobs
        request = ChatRequest(
            messages=self.batch_messages(explanation.text, texts), temperature=self.temperature,
            max_tokens=16 + 4 * len(group), json_schema=batch_schema(len(group)),
            top_logprobs=5 if logprobs else None,
        )
        try:
            response = await self.backend.achat(request)
        except BackendError:
            return failed(FuzzFailure.BACKEND_ERROR)
        answers = parse_batch(response.texts[0], len(group))
        if answers is None:
            return failed(FuzzFailure.UNPARSEABLE)
        steps = response.logprobs[0] if response.logprobs else ()
        confidences = answer_confidences(steps, len(group)) if steps else None
        return [
            verdict(explanation, self.name, it, answer=answer,
                    confidence=None if confidences is None else confidences[k], prompt=ref)
            for k, (it, answer) in enumerate(zip(group, answers, strict=True))
        ]

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
