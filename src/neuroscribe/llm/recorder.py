"""What every backend shares: the typed call failure, retry counting, names, and the recorder
that answers from the response cache and writes one ledger row per call.

A backend object is bound to one annotator name, one purpose (``explain``, ``simulate``) and one
prompt (its sha is stored on every ledger row), because ``Backend.chat`` only receives the
request. Responses are cached by request hash in the process-wide ``RESPONSE_CACHE`` (which the
flow primes from the warehouse, see ``neuroscribe.llm.cache``): a repeated request is answered
from the cache and recorded as a cache hit with zero latency, never sent again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from neuroscribe.errors import BadInput
from neuroscribe.llm.base import CALL_UNIT, ChatRequest, Ledger, LLMCall, Message
from neuroscribe.llm.cache import RESPONSE_CACHE, CachedResponse, Codec, ResponseCache
from neuroscribe.redact import redact

T = TypeVar("T")

class BackendError(RuntimeError):
    """A call that did not produce a response (network, server, protocol). Callers turn it into a
    typed failure; the message is stored in the ledger, never used as annotator output.

    ``kind`` is one of ``timeout``, ``connection``, ``rate_limited``, ``server_error``,
    ``client_error`` (a 4xx that a retry would not change), ``protocol`` or ``error``; the ledger's
    ``error`` column starts with it, and the run summary counts failures by it.

    The message is redacted (``neuroscribe.redact``) as the error is made: it often quotes an
    endpoint's error body, which may echo the request's credentials."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(redact(message))
        self.kind = kind


class RetryCounter:
    """Retries made while answering one request (set by backends that retry)."""

    def __init__(self) -> None:
        self.retries = 0


def split_name(name: str) -> tuple[str, str]:
    """``"openai/gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; the model may contain ``/``."""
    backend, sep, model = name.partition("/")
    if not sep or not backend or not model:
        raise BadInput(f"annotator name '{name}' must look like 'backend/model'")
    return backend, model


def plain_chat_format(messages: tuple[Message, ...], continue_final: bool = False) -> str:
    """A template-free rendering of messages, for backends without a chat template."""
    parts = [f"{m.role}: {m.content}" for m in messages]
    text = "\n\n".join(parts)
    return text if continue_final else text + "\n\nassistant: "


class CallRecorder:
    """Ledger rows, the response cache and cost estimates for one bound backend."""

    def __init__(
        self,
        annotator: str,
        ledger: Ledger | None,
        purpose: str,
        prompt_sha: str | None,
        cache: ResponseCache | None = None,
        prices: tuple[float, float] | None = None,
    ) -> None:
        self.annotator = annotator
        self.ledger = ledger
        self.purpose = purpose
        self.prompt_sha = prompt_sha
        self.cache = RESPONSE_CACHE if cache is None else cache
        self.prices = prices
        """US dollars per 1,000 prompt and completion tokens, when configured."""

    def run(
        self,
        request_hash: str,
        params: dict[str, Any],
        call: Callable[[], T],
        codec: Codec[T],
        counter: RetryCounter | None = None,
    ) -> T:
        """Answer from the cache or make ``call``; record one ledger row either way. The result
        is stored (and a hit rebuilt) through ``codec``, exactly as the ledger stores it."""
        hit = self._hit(request_hash, params, codec)
        if hit is not None:
            return hit[0]
        start = time.perf_counter()
        try:
            result = call()
        except Exception as e:
            self._failed(request_hash, params, e, start, counter)
            raise
        return self._done(request_hash, params, result, codec, start, counter)

    async def arun(
        self,
        request_hash: str,
        params: dict[str, Any],
        call: Callable[[], Awaitable[T]],
        codec: Codec[T],
        counter: RetryCounter | None = None,
    ) -> T:
        """``run`` for a coroutine ``call`` (backends on the event loop): the same cache, ledger
        row and latency (from the request's start to its parsed answer)."""
        hit = self._hit(request_hash, params, codec)
        if hit is not None:
            return hit[0]
        start = time.perf_counter()
        try:
            result = await call()
        except Exception as e:
            self._failed(request_hash, params, e, start, counter)
            raise
        return self._done(request_hash, params, result, codec, start, counter)

    def cached(
        self, request_hash: str, params: dict[str, Any], codec: Codec[T]
    ) -> tuple[T] | None:
        """The cached answer in a 1-tuple, recorded as a cache hit; None on a miss. For backends
        that answer their misses together (``record`` then stores each one)."""
        return self._hit(request_hash, params, codec)

    def record(
        self, request_hash: str, params: dict[str, Any], result: T, codec: Codec[T],
        latency_ms: float,
    ) -> T:
        """Store and record one answer computed with others (a batch), with its share of the
        batch's time as its latency. Returns it as a cache hit would give it."""
        return self._done(request_hash, params, result, codec, None, None, latency_ms)

    def record_failure(
        self, request_hash: str, params: dict[str, Any], error: Exception, latency_ms: float
    ) -> None:
        """Record one request of a batch that failed as a whole."""
        self._failed(request_hash, params, error, None, None, latency_ms)

    def _hit(self, request_hash: str, params: dict[str, Any], codec: Codec[T]) -> tuple[T] | None:
        hit = self.cache.get(request_hash)
        if hit is None:
            return None
        self._add(request_hash, params, hit.raw, "ok", None, hit.prompt_tokens,
                  hit.completion_tokens, 0.0, cache_hit=True)
        return (codec.decode(hit.raw),)

    def _failed(
        self, request_hash: str, params: dict[str, Any], e: Exception, start: float | None,
        counter: RetryCounter | None, latency_ms: float = 0.0,
    ) -> None:
        ms = latency_ms if start is None else (time.perf_counter() - start) * 1000
        kind = e.kind if isinstance(e, BackendError) else type(e).__name__
        self._add(request_hash, params, None, "failed", redact(f"{kind}: {e}"), 0, 0, ms,
                  retries=counter.retries if counter else 0)

    def _done(
        self, request_hash: str, params: dict[str, Any], result: T, codec: Codec[T],
        start: float | None, counter: RetryCounter | None, latency_ms: float = 0.0,
    ) -> T:
        ms = latency_ms if start is None else (time.perf_counter() - start) * 1000
        raw, pt, ct = codec.encode(result)
        clean = redact(raw)  # an answer that quotes a credential is stored without it
        if clean != raw:  # and used without it, so a cache hit gives the same result
            raw, result = clean, codec.decode(clean)
        self.cache.put(request_hash, CachedResponse(raw, pt, ct))
        self._add(request_hash, params, raw, "ok", None, pt, ct, ms,
                  retries=counter.retries if counter else 0)
        return result

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prices is None:
            return None
        return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1000

    def _add(
        self,
        request_hash: str,
        params: dict[str, Any],
        response: str | None,
        status: Literal["ok", "failed"],
        error: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        cache_hit: bool = False,
        retries: int = 0,
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
                status=status,
                error=error,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=latency_ms,
                cost_usd=0.0 if cache_hit else self.cost(prompt_tokens, completion_tokens),
                cache_hit=cache_hit,
                retries=retries,
                unit_key=CALL_UNIT.get(),
            )
        )


def chat_params(request: ChatRequest) -> dict[str, Any]:
    """The request as stored in the ledger (messages are kept: they are the prompt)."""
    return request.model_dump(mode="json")


def env_flag(var: str, default: bool) -> bool:
    """An on/off setting from the environment (1/true/yes/on), ``default`` when unset."""
    value = os.environ.get(var)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
