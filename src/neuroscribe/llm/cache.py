"""The response cache: request hash -> the raw response text a call produced.

The cache holds exactly what the ledger stores in ``llm_calls.response`` (plus the token counts),
so a cache primed from the warehouse answers like one filled in this process: every backend
result is encoded to text when it is made and decoded again on a hit (``Codec``). Chat responses
are stored as the full ``ChatResponse`` JSON (texts and logprobs); next-token distributions as a
JSON list of ``{candidate: probability}`` (Python floats survive JSON exactly).

One process-wide cache (``RESPONSE_CACHE``) serves every real backend. The flow primes it from
the warehouse before a stage (``neuroscribe.warehouse.calls.prime_cache_from_warehouse``: every
successful call that was not itself a cache hit).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from neuroscribe.llm.base import ChatResponse

T = TypeVar("T")


@dataclass(frozen=True)
class CachedResponse:
    raw: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one kind of result becomes ledger text (with token counts) and back."""

    encode: Callable[[T], tuple[str, int, int]]
    decode: Callable[[str], T]


def _encode_chat(r: ChatResponse) -> tuple[str, int, int]:
    return r.model_dump_json(), r.prompt_tokens, r.completion_tokens


CHAT = Codec[ChatResponse](_encode_chat, ChatResponse.model_validate_json)
"""Chat completions: the whole ``ChatResponse`` as JSON."""

DISTRIBUTIONS = Codec[list[dict[str, float]]](
    lambda d: (json.dumps(d), 0, 0), lambda raw: [dict(x) for x in json.loads(raw)]
)
"""Next-token distributions: a JSON list of ``{candidate: probability}``, unrounded."""

COUNTED_DISTRIBUTIONS = Codec[tuple[list[dict[str, float]], int]](
    lambda r: (json.dumps(r[0]), r[1], 0), lambda raw: (DISTRIBUTIONS.decode(raw), 0)
)
"""Distributions with the prompt tokens the call ran through the model (``llm_calls.
prompt_tokens``); stored as ``DISTRIBUTIONS`` stores them. A cache hit ran none (0; its ledger
row repeats the original call's count from the cache entry)."""


class ResponseCache:
    """Thread-safe map from request hash to ``CachedResponse`` (simulators call from threads)."""

    def __init__(self) -> None:
        self._data: dict[str, CachedResponse] = {}
        self._lock = threading.Lock()

    def get(self, request_hash: str) -> CachedResponse | None:
        with self._lock:
            return self._data.get(request_hash)

    def put(self, request_hash: str, entry: CachedResponse) -> None:
        with self._lock:
            self._data[request_hash] = entry

    def __contains__(self, request_hash: object) -> bool:
        with self._lock:
            return request_hash in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def prime(self, rows: Iterable[tuple[str, str | None, int | None, int | None]]) -> int:
        """Load ``(request_hash, response, prompt_tokens, completion_tokens)`` rows (ok calls
        that were not themselves cache hits). Rows without a response are skipped. Returns how
        many entries were added or replaced."""
        n = 0
        with self._lock:
            for request_hash, raw, pt, ct in rows:
                if raw is None:
                    continue
                self._data[request_hash] = CachedResponse(raw, int(pt or 0), int(ct or 0))
                n += 1
        return n


RESPONSE_CACHE = ResponseCache()
"""The process-wide cache shared by every backend except uncached fakes."""


def prime_cache(rows: Iterable[tuple[str, str | None, int | None, int | None]]) -> int:
    """Prime the process-wide cache from ``llm_calls`` rows (see the module docstring)."""
    return RESPONSE_CACHE.prime(rows)


def clear_response_cache() -> None:
    """Forget every cached response (tests; a long-lived process that wants fresh samples)."""
    RESPONSE_CACHE.clear()

