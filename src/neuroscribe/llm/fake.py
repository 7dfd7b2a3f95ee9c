"""A scripted backend for tests (after inspect_ai's ``mockllm``).

Register a script under a ``fake/...`` name, then build annotators with that name::

    register_fake("fake/echo", ["Words about zebras.", "Animal names."])
    explainer = make_explainer("fake/echo", ExplainConfig())

A script is a list consumed one entry per call, or a callable ``request -> entry``. An entry is a
string (the text of every requested sample), a sequence of strings (one per sample), a
``ChatResponse``, or an exception instance (raised as ``BackendError``, of the scripted
``BackendError``'s kind when it is one). ``distributions`` makes
the fake an in-process-style backend with next-token distributions (for the all-at-once
simulator). With ``cache=True`` the fake answers through the process-wide response cache like a
real backend (a repeated request is a cache hit; the cache can be primed from a warehouse);
by default every call reaches the script, since scripted answers change between calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Capabilities, ChatRequest, ChatResponse, Message
from neuroscribe.llm.cache import CHAT, DISTRIBUTIONS, ResponseCache
from neuroscribe.llm.factory import BackendPlugin
from neuroscribe.llm.recorder import BackendError, CallRecorder, chat_params, plain_chat_format

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig

Entry = Union[str, Sequence[str], ChatResponse, BaseException]  # noqa: UP007 (runtime alias)
Script = Sequence[Entry] | Callable[[ChatRequest], Entry]
Distributions = Callable[[str, Sequence[int], Sequence[str]], list[dict[str, float]]]


@dataclass
class FakeSpec:
    script: Script
    capabilities: Capabilities
    distributions: Distributions | None = None
    cache: bool = False
    """Answer through the process-wide response cache, like a real backend."""
    requests: list[ChatRequest] = field(default_factory=list)
    """Every chat request that reached the script (cache hits do not), for assertions."""
    distribution_calls: int = 0
    """Next-token distribution calls that reached ``distributions`` (cache hits do not)."""


_FAKES: dict[str, FakeSpec] = {}


def register_fake(
    name: str,
    script: Script = (),
    *,
    distributions: Distributions | None = None,
    capabilities: Capabilities | None = None,
    cache: bool = False,
) -> FakeSpec:
    """Register (or replace) a scripted backend under ``fake/<anything>``."""
    if not name.startswith("fake/"):
        raise ValueError(f"fake backends are named 'fake/...', not '{name}'")
    caps = capabilities or Capabilities(
        logprobs=False, prompt_distributions=distributions is not None, json_schema=True
    )
    spec = FakeSpec(script, caps, distributions, cache)
    _FAKES[name] = spec
    return spec


def is_registered(name: str) -> bool:
    return name in _FAKES


def unregister_fake(name: str) -> None:
    _FAKES.pop(name, None)


def fake_backend(name: str, recorder: CallRecorder, max_concurrency: int = 1) -> FakeBackend:
    if name not in _FAKES:
        known = ", ".join(sorted(_FAKES)) or "none"
        raise BadInput(f"no fake backend registered as '{name}' (registered: {known})")
    spec = _FAKES[name]
    if not spec.cache:
        recorder.cache = ResponseCache()  # private and fresh: every call reaches the script
    return FakeBackend(name, spec, recorder, max_concurrency)


class FakeBackend:
    """Answers from a script; records calls like a real backend."""

    def __init__(
        self, name: str, spec: FakeSpec, recorder: CallRecorder, max_concurrency: int = 1
    ) -> None:
        self.name = name
        self.max_concurrency = max_concurrency
        """1 unless configured: a list script's order must not depend on threads."""
        self.spec = spec
        self.capabilities = spec.capabilities
        self.recorder = recorder
        self._next = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self.recorder.run(
            request.request_hash(self.name), chat_params(request),
            lambda: self._answer(request), CHAT,
        )

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """``chat`` in a worker thread (several at once only when configured so)."""
        return await asyncio.to_thread(self.chat, request)

    def _answer(self, request: ChatRequest) -> ChatResponse:
        self.spec.requests.append(request)
        script = self.spec.script
        if callable(script):
            entry = script(request)
        else:
            if self._next >= len(script):
                raise BackendError(f"{self.name}: script exhausted after {self._next} calls")
            entry = script[self._next]
            self._next += 1
        if isinstance(entry, BaseException):  # a scripted BackendError keeps its kind
            kind = entry.kind if isinstance(entry, BackendError) else "error"
            raise BackendError(f"{self.name}: {entry}", kind) from entry
        if isinstance(entry, ChatResponse):
            return entry
        texts = (entry,) * request.n if isinstance(entry, str) else tuple(entry)
        return ChatResponse(texts=texts, prompt_tokens=1, completion_tokens=len(texts))

    def next_token_distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        if self.spec.distributions is None:
            raise NotImplementedError(f"{self.name} has no next-token distributions")
        fn = self.spec.distributions

        def call() -> list[dict[str, float]]:
            self.spec.distribution_calls += 1
            return fn(prompt, positions, candidates)

        key = content_hash(self.name, prompt, list(positions), list(candidates), length=32)
        params = {"kind": "next_token_distributions", "n_positions": len(positions)}
        return self.recorder.run(key, params, call, DISTRIBUTIONS)

    def format_chat(self, messages: tuple[Message, ...], continue_final: bool = False) -> str:
        return plain_chat_format(messages, continue_final)


def _make(
    name: str,
    model: str,
    recorder: CallRecorder,
    local_dtype: str,
    annotator: AnnotatorConfig | None,
) -> FakeBackend:
    concurrency = annotator.concurrency if annotator and annotator.concurrency else 1
    return fake_backend(name, recorder, concurrency)


def _check(name: str, model: str, annotator: AnnotatorConfig | None) -> None:
    if not is_registered(name):
        raise BadInput(f"no fake backend registered as '{name}'")


PLUGIN = BackendPlugin(make=_make, check=_check)
"""``fake/<script>`` in ``registry.LLM_BACKENDS``."""
