"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, Ollama, OpenRouter).

Settings come from the environment, never from the config file (the key is a secret):
``NEUROSCRIBE_OPENAI_BASE_URL`` or ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, and
``NEUROSCRIBE_OPENAI_{TIMEOUT,MAX_RETRIES,LOGPROBS,JSON_SCHEMA,CONCURRENCY}``. Retries and
timeouts are the client's own. Capabilities are declared, not probed: logprobs off and JSON
schema on by default, which llama.cpp's server, vLLM and OpenAI all satisfy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from neuroscribe.llm.base import Capabilities, ChatRequest, ChatResponse, Message, TokenLogprobs
from neuroscribe.llm.registry import (
    BackendError,
    CallRecorder,
    chat_params,
    describe_chat,
    env_flag,
    plain_chat_format,
)


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str | None = None
    """None means the client's default (api.openai.com)."""
    timeout_s: float = 120.0
    max_retries: int = 2
    logprobs: bool = False
    json_schema: bool = True
    max_concurrency: int = 4
    """Requests in flight at once from one annotator (windows are simulated in parallel)."""

    @classmethod
    def from_env(cls) -> OpenAISettings:
        env = os.environ
        return cls(
            base_url=env.get("NEUROSCRIBE_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL") or None,
            timeout_s=float(env.get("NEUROSCRIBE_OPENAI_TIMEOUT") or 120.0),
            max_retries=int(env.get("NEUROSCRIBE_OPENAI_MAX_RETRIES") or 2),
            logprobs=env_flag("NEUROSCRIBE_OPENAI_LOGPROBS", False),
            json_schema=env_flag("NEUROSCRIBE_OPENAI_JSON_SCHEMA", True),
            max_concurrency=max(1, int(env.get("NEUROSCRIBE_OPENAI_CONCURRENCY") or 4)),
        )


class OpenAIBackend:
    """``openai/<model>``: chat completions through the ``openai`` package."""

    def __init__(
        self, name: str, model: str, recorder: CallRecorder, settings: OpenAISettings
    ) -> None:
        self.name = name
        self.model = model
        self.recorder = recorder
        self.settings = settings
        self.capabilities = Capabilities(
            logprobs=settings.logprobs, prompt_distributions=False, json_schema=settings.json_schema
        )
        self.max_concurrency = settings.max_concurrency
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            # Local servers ignore the key, but the client refuses to start without one.
            self._client = openai.OpenAI(
                base_url=self.settings.base_url,
                api_key=os.environ.get("OPENAI_API_KEY") or "not-set",
                timeout=self.settings.timeout_s,
                max_retries=self.settings.max_retries,
            )
        return self._client

    def format_chat(self, messages: tuple[Message, ...], continue_final: bool = False) -> str:
        return plain_chat_format(messages, continue_final)

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self.recorder.run(
            request.request_hash(self.name), chat_params(request),
            lambda: self._create(request), describe_chat,
        )

    def next_token_distributions(self, prompt: str, positions: Any, candidates: Any) -> Any:
        # Chat endpoints cannot score positions inside the prompt (llama-server ignores echo).
        raise NotImplementedError(f"{self.name} has no prompt distributions")

    def _create(self, request: ChatRequest) -> ChatResponse:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "n": request.n,
            "seed": request.seed,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.top_logprobs is not None:
            if not self.capabilities.logprobs:
                raise ValueError(f"{self.name}: logprobs requested but not declared available")
            kwargs.update(logprobs=True, top_logprobs=request.top_logprobs)
        if request.json_schema is not None:
            if not self.capabilities.json_schema:
                raise ValueError(f"{self.name}: JSON schema requested but not declared available")
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
            }
        try:
            completion = self.client.chat.completions.create(**kwargs)
        except openai.OpenAIError as e:
            raise BackendError(f"{self.name}: {type(e).__name__}: {e}") from e
        choices = sorted(completion.choices or [], key=lambda c: c.index)
        if not choices:
            raise BackendError(f"{self.name}: the response has no choices")
        usage = completion.usage
        return ChatResponse(
            texts=tuple(c.message.content or "" for c in choices),
            logprobs=_logprobs(choices) if request.top_logprobs is not None else None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


def _logprobs(choices: list[Any]) -> tuple[tuple[TokenLogprobs, ...], ...] | None:
    out = []
    for c in choices:
        content = (c.logprobs.content if c.logprobs else None) or []
        out.append(tuple(
            TokenLogprobs(token=t.token, top=tuple((x.token, x.logprob) for x in t.top_logprobs))
            for t in content
        ))
    return tuple(out)
