"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, Ollama, OpenRouter).

Settings come from the environment, overridden per annotator by the run config
(``[annotators."openai/<model>"]``, see ``AnnotatorConfig``). The key comes only from
``OPENAI_API_KEY``: it is never part of a config, a ledger row or a log line. Environment:
``NEUROSCRIBE_OPENAI_BASE_URL`` or ``OPENAI_BASE_URL``, and
``NEUROSCRIBE_OPENAI_{TIMEOUT,MAX_RETRIES,LOGPROBS,JSON_SCHEMA,CONCURRENCY}``, and
``NEUROSCRIBE_OPENAI_AIOHTTP=0`` to keep the client's default transport (``neuroscribe.llm.aio``).

Requests run on the process's one event loop (``neuroscribe.llm.aio``); callers stay
synchronous and wait for their own request. The body is posted as JSON by the process's
``llm.poster.JsonPoster`` (aiohttp, with the ``AsyncOpenAI`` client's headers and exceptions),
or by the client's ``post`` where aiohttp is not installed, and the answer taken as text and
read by ``neuroscribe.llm.completion`` (an unreadable 200 is a retried ``protocol`` failure,
never an exception of the stage): the typed ``chat.completions.create`` walks every message
through its parameter transform first, which cost about 2.5 ms of the 5 ms a call took
(``benchmarks/llm_throughput.py``), and the body it would send is the same; the client's own
request building then took about 60% of what was left.

Robustness is ours, not the client's (``max_retries=0`` on the client): at most ``concurrency``
requests of one annotator in flight (a process-wide semaphore on the loop, shared by all the
annotator's bound backends; ``llm.fanout.fan_out`` awaits that many units or windows at once
through ``achat``), a timeout per attempt, and retries with exponential backoff
and jitter on 429/5xx/timeouts/connection errors/unreadable bodies only
(``neuroscribe.llm.retry``; the wait frees
the loop for other requests). Capabilities are
declared, not probed: logprobs off and JSON schema on by default, which llama.cpp's server, vLLM
and OpenAI all satisfy. ``check_backend`` is the cheap preflight call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from neuroscribe.errors import BadInput
from neuroscribe.llm.aio import LOOP, transport
from neuroscribe.llm.base import Capabilities, ChatRequest, ChatResponse, Message
from neuroscribe.llm.cache import CHAT
from neuroscribe.llm.completion import ProtocolError, parse_completion
from neuroscribe.llm.factory import BackendPlugin
from neuroscribe.llm.recorder import (
    CallRecorder,
    RetryCounter,
    chat_params,
    env_flag,
    plain_chat_format,
)
from neuroscribe.llm.retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str | None = None
    """None means the client's default (api.openai.com)."""
    timeout_s: float = 120.0
    """Per attempt."""
    max_retries: int = 4
    logprobs: bool = False
    json_schema: bool = True
    max_concurrency: int = 8
    """Requests in flight at once from one annotator (windows are simulated in parallel)."""

    @classmethod
    def from_env(cls) -> OpenAISettings:
        env = os.environ
        return cls(
            base_url=env.get("NEUROSCRIBE_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL") or None,
            timeout_s=float(env.get("NEUROSCRIBE_OPENAI_TIMEOUT") or 120.0),
            max_retries=int(env.get("NEUROSCRIBE_OPENAI_MAX_RETRIES") or 4),
            logprobs=env_flag("NEUROSCRIBE_OPENAI_LOGPROBS", False),
            json_schema=env_flag("NEUROSCRIBE_OPENAI_JSON_SCHEMA", True),
            max_concurrency=max(1, int(env.get("NEUROSCRIBE_OPENAI_CONCURRENCY") or 8)),
        )

    def with_overrides(self, annotator: AnnotatorConfig | None) -> OpenAISettings:
        """These settings with the run config's per-annotator values where they are set."""
        if annotator is None:
            return self
        pairs: dict[str, Any] = {
            "base_url": annotator.base_url, "timeout_s": annotator.timeout_s,
            "max_retries": annotator.max_retries, "logprobs": annotator.logprobs,
            "json_schema": annotator.json_schema, "max_concurrency": annotator.concurrency,
        }
        return replace(self, **{k: v for k, v in pairs.items() if v is not None})


class PreflightError(BadInput):
    """An annotator that cannot be used, found before the run starts. ``reason`` is one of
    ``unreachable``, ``auth``, ``unknown_model``, ``rejected``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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
        self.policy = RetryPolicy(max_retries=settings.max_retries)

    @property
    def cache_identity(self) -> str:
        """What answers depend on besides the request: the annotator and the endpoint."""
        return f"{self.name}@{self.settings.base_url or 'default'}"

    def format_chat(self, messages: tuple[Message, ...], continue_final: bool = False) -> str:
        return plain_chat_format(messages, continue_final)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """``achat`` on the process's event loop, waited for in this thread."""
        return LOOP.run(self.achat(request))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """The request on the event loop (callers that run many at once go through
        ``llm.fanout.fan_out``), through the cache and the ledger like ``chat``."""
        counter = RetryCounter()
        return await self.recorder.arun(
            request.request_hash(self.cache_identity), chat_params(request),
            lambda: self._create(request, counter), CHAT, counter,
        )

    def next_token_distributions(self, prompt: str, positions: Any, candidates: Any) -> Any:
        # Chat endpoints cannot score positions inside the prompt (llama-server ignores echo).
        raise NotImplementedError(f"{self.name} has no prompt distributions")

    async def _attempt(self, body: dict[str, Any], logprobs: bool) -> ChatResponse:
        # Held for one attempt only, never while backing off. The body is read inside the
        # attempt, so an unreadable 200 is retried like a dropped connection.
        async with LOOP.semaphore(self.name, self.max_concurrency):
            text = await _post(self.settings.base_url, body, self.settings.timeout_s)
        if not isinstance(text, str):  # pragma: no cover - the client's cast to str
            raise ProtocolError(f"the client returned a {type(text).__name__}, not the body")
        return parse_completion(text, logprobs)

    async def _create(self, request: ChatRequest, counter: RetryCounter) -> ChatResponse:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "n": request.n,
            "seed": request.seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.top_logprobs is not None:
            if not self.capabilities.logprobs:
                raise ValueError(f"{self.name}: logprobs requested but not declared available")
            body.update(logprobs=True, top_logprobs=request.top_logprobs)
        if request.json_schema is not None:
            if not self.capabilities.json_schema:
                raise ValueError(f"{self.name}: JSON schema requested but not declared available")
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
            }
        return await call_with_retries(
            lambda: self._attempt(body, request.top_logprobs is not None), self.policy, counter,
            lambda e: f"{self.name}: {type(e).__name__}: {e}",
        )


async def _post(base_url: str | None, body: dict[str, Any], timeout_s: float) -> Any:
    """One chat-completions request for ``base_url`` (on the loop): the body of a 2xx answer as
    text (``llm.completion`` reads it); other statuses raise the client's ``APIStatusError``.
    Posted by the process's ``llm.poster.JsonPoster`` where the transport is aiohttp, else by
    its ``AsyncOpenAI`` client."""
    if transport() == "aiohttp":
        return await LOOP.poster(base_url).post("/chat/completions", body, timeout_s)
    return await LOOP.client(base_url).post(
        "/chat/completions", cast_to=str, body=body,
        options={"timeout": timeout_s, "security": {"bearer_auth": True}},
    )


def preflight_openai(name: str, model: str, settings: OpenAISettings) -> None:
    """One cheap call (a 1-token chat, no retries, at most 30 s) that turns an unreachable
    endpoint, a wrong key or an unknown model into a ``PreflightError`` naming the problem."""
    import openai

    where = settings.base_url or "https://api.openai.com/v1"
    body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}],
            "max_tokens": 1, "temperature": 0.0}
    try:
        LOOP.run(_post(settings.base_url, body, min(settings.timeout_s, 30.0)))
    except openai.APIConnectionError as e:  # timeouts included
        raise PreflightError(
            f"annotator '{name}': cannot reach the endpoint {where} ({type(e).__name__}: {e}); "
            "check OPENAI_BASE_URL or annotators.base_url and that the server is running",
            "unreachable",
        ) from e
    except openai.AuthenticationError as e:
        raise PreflightError(
            f"annotator '{name}': the endpoint {where} rejected the API key (401); "
            "check OPENAI_API_KEY", "auth",
        ) from e
    except openai.NotFoundError as e:
        raise PreflightError(
            f"annotator '{name}': the endpoint {where} does not know the model '{model}' (404: "
            f"{_message(e)})", "unknown_model",
        ) from e
    except openai.APIStatusError as e:
        if e.status_code == 429 or e.status_code >= 500:
            return  # busy or flaky, not misconfigured: the run's retries deal with it
        raise PreflightError(
            f"annotator '{name}': the endpoint {where} refused a 1-token test request "
            f"({e.status_code}: {_message(e)})", "rejected",
        ) from e


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e)


def _make(
    name: str,
    model: str,
    recorder: CallRecorder,
    local_dtype: str,
    annotator: AnnotatorConfig | None,
) -> OpenAIBackend:
    return OpenAIBackend(name, model, recorder, OpenAISettings.from_env().with_overrides(annotator))


def _check(name: str, model: str, annotator: AnnotatorConfig | None) -> None:
    preflight_openai(name, model, OpenAISettings.from_env().with_overrides(annotator))


PLUGIN = BackendPlugin(make=_make, check=_check)
"""``openai/<model>`` in ``registry.LLM_BACKENDS``."""
