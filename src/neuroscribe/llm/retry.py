"""Our retry policy for HTTP annotators: which failures to retry, and how long to wait.

Retried: 429 (rate limited), 408/409, every 5xx, timeouts, connection errors and answers whose
body cannot be read (``protocol``: a truncated or non-JSON 200, a body without ``choices``, as a
proxy cutting a connection short produces); these change with time.
Not retried: any other 4xx (a wrong key, an unknown model, a bad request), which a
second try would not change. Waits grow exponentially with full jitter
(``uniform(0, min(max_delay, base * 2**attempt))``) so that many threads hit by the same 429 do
not come back in step; a ``Retry-After`` header raises the wait to what the server asked for
(capped by ``max_delay_s``). The openai client's own retries are switched off (``max_retries=0``)
so this is the only policy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from neuroscribe.llm.completion import ProtocolError
from neuroscribe.llm.recorder import BackendError, RetryCounter

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        wait = rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_s))
        return wait


def classify(error: BaseException) -> tuple[str, bool]:
    """(failure kind, whether a retry may help) for an exception from the openai client or
    from reading its answer (``ProtocolError``)."""
    import openai

    if isinstance(error, openai.APITimeoutError):  # a subclass of APIConnectionError
        return "timeout", True
    if isinstance(error, openai.APIConnectionError):
        return "connection", True
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            return "rate_limited", True
        if status >= 500:
            return "server_error", True
        return "client_error", status in RETRYABLE_STATUS
    unreadable = (openai.APIResponseValidationError, ProtocolError, ValueError, LookupError)
    if isinstance(error, unreadable):  # an answer whose body could not be read
        return "protocol", True
    return "protocol", False  # the client refusing to send (no key, a bad option)


def retry_after_seconds(error: BaseException) -> float | None:
    response: Any = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    counter: RetryCounter,
    describe: Callable[[BaseException], str],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Await ``attempt()`` until it succeeds, fails for good, or retries run out (backing off
    with ``sleep``, which frees the event loop for other requests). Failures raise
    ``BackendError`` with the kind of the last error; ``counter.retries`` counts the retries.
    A ``ValueError`` or ``LookupError`` out of the client while it reads an answer (a body it
    could not decode) counts as ``protocol``: none may leave as a bare ``ValueError``, which the
    flows' task-retry rule would read as bad input."""
    import openai

    for n in range(policy.max_retries + 1):
        try:
            return await attempt()
        except (openai.OpenAIError, ProtocolError, ValueError, LookupError) as e:
            kind, retryable = classify(e)
            if not retryable or n == policy.max_retries:
                raise BackendError(describe(e), kind) from e
            counter.retries += 1
            rng = rng or random.Random()  # made on the first retry: seeding costs 0.2 ms
            await sleep(policy.delay(n, retry_after_seconds(e), rng))
    raise AssertionError("unreachable")
