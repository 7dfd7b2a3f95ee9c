"""Simulation by a chat model answering JSON (OpenAI-compatible endpoints).

Two answer formats (``FORMATS``, chosen per annotator with ``simulate_format``):

- ``dense`` (the default): the model gets the window's tokens as a JSON list and answers
  ``{"activations": [{"token": ..., "activation": 0-10}, ...]}``, one entry per token;
- ``sparse`` (``simulate.sparse``): the tokens are numbered and the model lists only those it
  predicts to fire, ``{"fires": [{"index": ..., "token": ..., "activation": ...}]}``, every other
  token 0: about a tenth of the generated tokens for a window where few tokens fire.

With the ``json_schema`` capability the format's schema is sent as structured output; without
it the prompt alone asks for JSON. The answer is validated with pydantic; a bad answer gets one
repair turn, then becomes a typed failure (never zeros).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from neuroscribe.llm.base import Backend, ChatRequest, Message
from neuroscribe.llm.fanout import fan_out, map_bounded
from neuroscribe.llm.recorder import BackendError
from neuroscribe.prompts import Prompt, load_prompt
from neuroscribe.records import Explanation, Simulation, Window
from neuroscribe.simulate import sparse as sparse_format
from neuroscribe.simulate.base import (
    SimulateFailure,
    SimulatorBase,
    failed_simulation,
    ok_simulation,
)
from neuroscribe.simulate.sparse import AnswerError, read_json_answer

PROMPT = "simulate_json"
REPAIR_PROMPT = "simulate_json_repair"


class TokenActivation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str
    activation: float = Field(ge=0, le=10)


class SimulationAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activations: list[TokenActivation]


def answer_schema(n_tokens: int) -> dict[str, Any]:
    """JSON schema of the answer, strict-mode compatible, with the item count fixed."""
    item = {
        "type": "object",
        "properties": {"token": {"type": "string"}, "activation": {"type": "number"}},
        "required": ["token", "activation"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "activations": {
                "type": "array", "items": item, "minItems": n_tokens, "maxItems": n_tokens,
            }
        },
        "required": ["activations"],
        "additionalProperties": False,
    }


def parse_answer(text: str, n_tokens: int) -> list[float]:
    """Values from a JSON answer; AnswerError (unparseable or wrong_length) otherwise."""
    answer = read_json_answer(text, SimulationAnswer)
    if len(answer.activations) != n_tokens:
        raise AnswerError(
            SimulateFailure.WRONG_LENGTH,
            f"{len(answer.activations)} entries for {n_tokens} tokens",
        )
    return [a.activation for a in answer.activations]


@dataclass(frozen=True)
class AnswerFormat:
    """What one answer format asks for and how its answer is read."""

    prompt: str
    repair_prompt: str
    tokens: Callable[[Sequence[str]], dict[str, str]]
    """The prompt's variables that show the window's tokens."""
    schema: Callable[[int], dict[str, Any]]
    max_tokens: Callable[[int], int]
    parse: Callable[[str, Sequence[str]], list[float]]
    """Answer text, window tokens -> one value per token; raises ``AnswerError``."""


FormatName = Literal["dense", "sparse"]

FORMATS: dict[str, AnswerFormat] = {
    "dense": AnswerFormat(
        PROMPT, REPAIR_PROMPT,
        lambda tokens: {"tokens_json": json.dumps(list(tokens), ensure_ascii=False)},
        answer_schema, lambda n: 64 + 24 * n, lambda text, tokens: parse_answer(text, len(tokens)),
    ),
    "sparse": AnswerFormat(
        sparse_format.PROMPT, sparse_format.REPAIR_PROMPT,
        lambda tokens: {"tokens_numbered": sparse_format.numbered_tokens(tokens)},
        sparse_format.sparse_schema, sparse_format.max_answer_tokens, sparse_format.parse_sparse,
    ),
}
"""Answer formats by name (``AnnotatorConfig.simulate_format``); ``dense`` is the default."""


class JsonSimulator(SimulatorBase):
    """``openai/...`` (or a ``fake/...`` without distributions)."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        prompt: Prompt | None = None,
        temperature: float = 0.0,
        answer_format: FormatName = "dense",
    ) -> None:
        self.name = name
        self.backend = backend
        self.format = FORMATS[answer_format]
        self.prompt = prompt or load_prompt(self.format.prompt)
        self.repair = load_prompt(self.format.repair_prompt)
        self.temperature = temperature
        self.max_concurrency = backend.max_concurrency
        """Windows in flight at once (the backend's per-annotator limit)."""

    def messages(self, explanation: str, tokens: Sequence[str]) -> tuple[Message, ...]:
        return self.prompt.render_messages(
            explanation=explanation, n_tokens=str(len(tokens)), **self.format.tokens(tokens)
        )

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return fan_out(lambda w: self.simulate_one(explanation, w), windows, self.max_concurrency)

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        return await map_bounded(
            lambda w: self.simulate_one(explanation, w), windows, self.max_concurrency
        )

    def _request(self, messages: tuple[Message, ...], n_tokens: int) -> ChatRequest:
        schema = self.format.schema(n_tokens) if self.backend.capabilities.json_schema else None
        return ChatRequest(
            messages=messages, temperature=self.temperature,
            max_tokens=self.format.max_tokens(n_tokens), json_schema=schema,
        )

    async def simulate_one(self, explanation: Explanation, window: Window) -> Simulation:
        """Render, call (``Backend.achat``), parse, with one repair turn."""
        ref = self.prompt.ref
        if explanation.status != "ok" or not explanation.text:
            return failed_simulation(
                explanation, self.name, window, ref, SimulateFailure.NO_EXPLANATION
            )
        n = len(window.tokens)
        if n == 0:
            return ok_simulation(explanation, self.name, window, ref, [])
        messages = self.messages(explanation.text, window.tokens)
        error: AnswerError | None = None
        for _attempt in range(2):  # the answer, then one repair turn
            try:
                text = (await self.backend.achat(self._request(messages, n))).texts[0]
            except BackendError:
                return failed_simulation(
                    explanation, self.name, window, ref, SimulateFailure.BACKEND_ERROR
                )
            try:
                values = self.format.parse(text, window.tokens)
                return ok_simulation(explanation, self.name, window, ref, values)
            except AnswerError as e:
                error = e
                repair = self.repair.render_messages(error=str(e), n_tokens=str(n))
                messages = (*messages, Message(role="assistant", content=text), *repair)
        assert error is not None
        return failed_simulation(explanation, self.name, window, ref, error.kind)
