"""Backends by name (``backend/model``), and the call recording every backend shares.

A backend object is bound to one annotator name, one purpose (``explain``, ``simulate``) and one
prompt (its sha is stored on every ledger row), because ``Backend.chat`` only receives the
request. Responses are cached in memory by request hash: a repeated request is answered from the
cache and recorded as a cache hit, never sent again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from neuroscribe.llm.base import Backend, ChatRequest, ChatResponse, Ledger, LLMCall, Message

LLM_BACKENDS = ("local", "openai", "fake")
"""Backends that are LLMs; ``baseline`` annotators are built by ``explain``/``simulate``."""

T = TypeVar("T")

_SHARED_CACHE: dict[str, Any] = {}
"""Process-wide response cache for real backends, keyed by request hash."""


def clear_response_cache() -> None:
    """Forget every cached response (tests; a long-lived process that wants fresh samples)."""
    _SHARED_CACHE.clear()


class BackendError(RuntimeError):
    """A call that did not produce a response (network, server, protocol). Callers turn it into a
    typed failure; the message is stored in the ledger, never used as annotator output."""


def split_name(name: str) -> tuple[str, str]:
    """``"openai/gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; the model may contain ``/``."""
    backend, sep, model = name.partition("/")
    if not sep or not backend or not model:
        raise ValueError(f"annotator name '{name}' must look like 'backend/model'")
    return backend, model


def plain_chat_format(messages: tuple[Message, ...], continue_final: bool = False) -> str:
    """A template-free rendering of messages, for backends without a chat template."""
    parts = [f"{m.role}: {m.content}" for m in messages]
    text = "\n\n".join(parts)
    return text if continue_final else text + "\n\nassistant: "


class CallRecorder:
    """Ledger rows and the response cache for one bound backend."""

    def __init__(
        self,
        annotator: str,
        ledger: Ledger | None,
        purpose: str,
        prompt_sha: str | None,
        cache: dict[str, Any] | None = None,
    ) -> None:
        self.annotator = annotator
        self.ledger = ledger
        self.purpose = purpose
        self.prompt_sha = prompt_sha
        self.cache = _SHARED_CACHE if cache is None else cache

    def run(
        self,
        request_hash: str,
        params: dict[str, Any],
        call: Callable[[], T],
        describe: Callable[[T], tuple[str, int, int]],
    ) -> T:
        """Answer from the cache or make ``call``; record one ledger row either way.

        ``describe`` turns a result into (raw response text, prompt tokens, completion tokens).
        """
        if request_hash in self.cache:
            result = self.cache[request_hash]
            raw, pt, ct = describe(result)
            self._add(request_hash, params, raw, "ok", None, pt, ct, 0.0, cache_hit=True)
            return result
        start = time.perf_counter()
        try:
            result = call()
        except Exception as e:
            ms = (time.perf_counter() - start) * 1000
            self._add(request_hash, params, None, "failed", f"{type(e).__name__}: {e}", 0, 0, ms)
            raise
        ms = (time.perf_counter() - start) * 1000
        raw, pt, ct = describe(result)
        self.cache[request_hash] = result
        self._add(request_hash, params, raw, "ok", None, pt, ct, ms)
        return result

    def _add(
        self,
        request_hash: str,
        params: dict[str, Any],
        response: str | None,
        status: str,
        error: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        cache_hit: bool = False,
    ) -> None:
        if self.ledger is None:
            return
        self.ledger.add(
            LLMCall(
                request_hash=request_hash,
                annotator=self.annotator,
                purpose=self.purpose,
                prompt_sha=self.prompt_sha,
                params=params,
                response=response,
                status=status,  # type: ignore[arg-type]
                error=error,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_ms,
                cache_hit=cache_hit,
            )
        )


def chat_params(request: ChatRequest) -> dict[str, Any]:
    """The request as stored in the ledger (messages are kept: they are the prompt)."""
    return request.model_dump(mode="json")


def describe_chat(response: ChatResponse) -> tuple[str, int, int]:
    return json.dumps(list(response.texts)), response.prompt_tokens, response.completion_tokens


def make_backend(
    name: str,
    ledger: Ledger | None = None,
    purpose: str = "explain",
    prompt_sha: str | None = None,
    local_dtype: str = "float32",
) -> Backend:
    """Build the LLM backend named ``backend/model``; ValueError for an unknown backend."""
    backend, model = split_name(name)
    recorder = CallRecorder(name, ledger, purpose, prompt_sha)
    if backend == "local":
        from neuroscribe.llm.local import LocalBackend

        return LocalBackend(name, model, recorder, local_dtype)
    if backend == "openai":
        from neuroscribe.llm.openai_backend import OpenAIBackend, OpenAISettings

        return OpenAIBackend(name, model, recorder, OpenAISettings.from_env())
    if backend == "fake":
        from neuroscribe.llm.fake import fake_backend

        recorder.cache = {}  # scripted answers change between calls; never serve them cached
        return fake_backend(name, recorder)
    valid = ", ".join(LLM_BACKENDS)
    raise ValueError(f"unknown LLM backend '{backend}' in '{name}'; valid LLM backends: {valid}")


def env_flag(var: str, default: bool) -> bool:
    value = os.environ.get(var)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
