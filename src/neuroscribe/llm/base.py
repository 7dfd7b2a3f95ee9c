"""The one narrow interface every LLM backend implements.

Every LLM step is render (pure) -> ``Backend.chat`` or ``Backend.next_token_distributions`` ->
parse (pure). Backends declare what they can do in ``Capabilities``; callers check capabilities,
never model names. Every call a backend makes is appended to the ``Ledger`` it was given, and the
request hash is the cache key.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

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
    samples: bool = False
    """Always answers ``n > 1`` samples in one request (an in-process model), so explainers need
    not probe whether the endpoint takes ``n``."""


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
    unit_key: str | None = None
    """The unit the call worked for (``CALL_UNIT`` when it was made; None: no single unit)."""


CALL_UNIT: ContextVar[str | None] = ContextVar("neuroscribe_call_unit", default=None)
"""The unit whose work the calls made in this context are for: the stages set it per unit
(``for_unit``, ``in_unit``), and every ledger row carries it (``llm_calls.unit_key``)."""

BATCH_UNITS: ContextVar[tuple[str | None, ...] | None] = ContextVar(
    "neuroscribe_batch_units", default=None
)
"""For requests answered together (``llm.coalesce``): each request's ``CALL_UNIT``, in order."""

T = TypeVar("T")


@contextmanager
def for_unit(unit_key: str | None) -> Iterator[None]:
    """Calls made inside are recorded as the work of ``unit_key``."""
    token = CALL_UNIT.set(unit_key)
    try:
        yield
    finally:
        CALL_UNIT.reset(token)


async def in_unit(unit_key: str | None, work: Awaitable[T]) -> T:
    """``await work`` with its calls recorded as the work of ``unit_key`` (for ``fan_out``)."""
    with for_unit(unit_key):
        return await work


LedgerSink = Callable[[list[LLMCall]], object]
"""Where a ledger hands its calls as they are made (the flow: a write to ``llm_calls``)."""


class Ledger:
    """Collects the calls made during a stage. Thread-safe: simulators call backends from a pool.

    Without a sink, the calls stay in ``calls`` until ``drain`` takes them. With a ``sink``,
    every call is also handed to it in batches as the stage goes: when ``flush_every`` calls are
    pending, when the oldest pending call is ``flush_seconds`` old (checked on every ``add`` and,
    while the ledger is open as a context manager, by a background thread), and on ``flush`` or
    ``close``. So a process killed mid-stage loses only the calls in flight and those finished
    in the last ``flush_seconds`` (at most ``flush_every - 1``): the flow's sink writes them to
    the warehouse, whose rows prime the response cache of the next run.

    A call added on an event loop (the endpoint backends' thread) that makes a batch due wakes
    the background thread to hand it over, rather than blocking the loop, and every request in
    flight on it, for the sink's write; other threads hand it over themselves.

    The sink is called by one thread at a time. A sink error never reaches the backend thread
    that added the call (its result is good): the batch is kept, and the error is raised by the
    next ``flush`` or ``close`` from the caller's thread.
    """

    def __init__(
        self,
        sink: LedgerSink | None = None,
        *,
        flush_every: int = 32,
        flush_seconds: float = 1.0,
    ) -> None:
        if flush_every < 1 or flush_seconds <= 0:
            raise ValueError("flush_every must be at least 1 and flush_seconds positive")
        self.calls: list[LLMCall] = []
        self.sink = sink
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._pending: list[LLMCall] = []
        self._oldest = 0.0  # monotonic time of the oldest pending call
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._sink_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._timer: threading.Thread | None = None

    def add(self, call: LLMCall) -> None:
        with self._lock:
            self.calls.append(call)
            if self.sink is None:
                return
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(call)
            due = self._due()
        if not due:
            return
        if self._timer is not None and _on_event_loop():
            self._wake.set()  # the sink's write must not stall every request on the loop
        else:
            self._flush_quietly()

    def drain(self) -> list[LLMCall]:
        """Every call recorded since the last drain (also those already handed to the sink)."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def flush(self) -> int:
        """Hand every pending call to the sink now. Returns how many; raises a sink error (the
        calls stay pending)."""
        if self.sink is None:
            return 0
        with self._sink_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                error, self._error = self._error, None
            if not batch:
                if error is not None:
                    raise error
                return 0
            try:
                self.sink(batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                    self._oldest = time.monotonic()
                raise
        return len(batch)

    def close(self) -> None:
        """Stop the background thread, then hand over what is pending (raising a sink error)."""
        self._stop.set()
        self._wake.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join()
        self._timer = None
        self.flush()

    def __enter__(self) -> Ledger:
        if self.sink is not None and self._timer is None:
            self._stop.clear()
            self._wake.clear()
            self._timer = threading.Thread(target=self._tick, name="ledger-flush", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _due(self) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= self.flush_every
            or time.monotonic() - self._oldest >= self.flush_seconds
        )

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds / 4)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                due = self._due()
            if due:
                self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except BaseException as e:  # kept for the caller's next flush or close
            with self._lock:
                self._error = e


def _on_event_loop() -> bool:
    """Whether the calling thread is running an asyncio event loop (the endpoint backends')."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Backend(Protocol):
    """An LLM: in-process, behind an OpenAI-compatible endpoint, or scripted (tests)."""

    name: str
    """``backend/model``, as named in the config."""
    capabilities: Capabilities
    max_concurrency: int
    """Requests this annotator may have in flight at once: the bound ``llm.fanout.fan_out``
    uses (1 for in-process models and, unless configured, scripted fakes)."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One request, answered in the calling thread."""
        ...

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """``chat`` as a coroutine on the shared event loop (``llm.aio.LOOP``): endpoints await
        the request there; in-process backends run ``chat`` in a worker thread."""
        ...

    def format_chat(self, messages: tuple[Message, ...], continue_final: bool = False) -> str:
        """The prompt text the model sees for ``messages`` (its chat template, or a plain
        rendering without one)."""
        ...

    def next_token_distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """Probability of each candidate token as the next token after each character offset in
        ``prompt`` (only when ``capabilities.prompt_distributions``)."""
        ...


@runtime_checkable
class BatchDistributions(Protocol):
    """A backend that answers many ``next_token_distributions`` queries in batched forward
    passes (the in-process ``local`` backend)."""

    def next_token_distributions_batch(
        self, queries: Sequence[tuple[str, Sequence[int]]], candidates: Sequence[str]
    ) -> list[list[dict[str, float]] | Exception]:
        """One entry per ``(prompt, positions)`` query: its distributions, or the exception
        (``BackendError``, ``ValueError``) that query alone raised."""
        ...

