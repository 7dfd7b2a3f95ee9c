"""The one narrow interface every LLM backend implements.

Every LLM step is render (pure) -> ``Backend.chat`` or ``Backend.next_token_distributions`` ->
parse (pure). Backends declare what they can do in ``Capabilities``; callers check capabilities,
never model names. Every call a backend makes is appended to the ``Ledger`` it was given, and the
request hash is the cache key.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import Field

from neuroscribe.ids import content_hash
from neuroscribe.records import Record


class Capabilities(Record):
    chat: bool = True
    logprobs: bool = False
    """Completion tokens come with ``top_logprobs``."""
    prompt_distributions: bool = False
    """Next-token distributions at chosen positions *inside* the prompt, from one forward pass
    (exact for in-process models: the all-at-once simulator)."""
    json_schema: bool = False
    """Structured output constrained by a JSON schema."""


class Message(Record):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Record):
    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 64
    n: int = 1
    seed: int = 0
    top_logprobs: int | None = None
    json_schema: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()

    def request_hash(self, annotator: str) -> str:
        return content_hash(annotator, self.model_dump(mode="json"), length=32)


class TokenLogprobs(Record):
    token: str
    top: tuple[tuple[str, float], ...]
    """(token, logprob) pairs, most likely first."""


class ChatResponse(Record):
    texts: tuple[str, ...]
    """One completion per requested sample (``n``)."""
    logprobs: tuple[tuple[TokenLogprobs, ...], ...] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMCall(Record):
    """One row of the ledger (table ``llm_calls``)."""

    request_hash: str
    annotator: str
    purpose: str
    """``explain``, ``simulate`` or ``preflight``."""
    prompt_sha: str | None
    params: dict[str, Any]
    response: str | None
    status: Literal["ok", "failed"]
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    cache_hit: bool = False
    retries: int = Field(default=0, ge=0)
    """Attempts beyond the first (429, 5xx, timeouts, connection errors)."""


class Ledger:
    """Collects the calls made during a stage; the flow writes them to the warehouse.
    Thread-safe: simulators call backends from a pool."""

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self._lock = threading.Lock()

    def add(self, call: LLMCall) -> None:
        with self._lock:
            self.calls.append(call)

    def drain(self) -> list[LLMCall]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


class Backend(Protocol):
    """An LLM: in-process, behind an OpenAI-compatible endpoint, or scripted (tests)."""

    name: str
    """``backend/model``, as named in the config."""
    capabilities: Capabilities

    def chat(self, request: ChatRequest) -> ChatResponse: ...

    def next_token_distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """Probability of each candidate token as the next token after each character offset in
        ``prompt`` (only when ``capabilities.prompt_distributions``)."""
        ...
