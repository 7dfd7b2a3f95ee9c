"""In-process chat model (transformers), loaded through ``neuroscribe.models.load_model``.

It has the logits, so besides sampling it gives exact next-token distributions at any position
inside a prompt from one forward pass: what the all-at-once simulator needs. The model is cached
per process, so the subject and this annotator share one copy when they name the same model.

Requests are answered in batches (``neuroscribe.llm.local_batch``): the ``achat`` calls that
``fan_out`` has in flight at once are coalesced into one generation (``llm.coalesce``), and
``next_token_distributions_batch`` scores many prompts per forward pass. Each request keeps its
own cache entry and ledger row (``llm.batch_record``).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Capabilities, ChatRequest, ChatResponse, Message, TokenLogprobs
from neuroscribe.llm.batch_record import answer_batch
from neuroscribe.llm.cache import CHAT, COUNTED_DISTRIBUTIONS
from neuroscribe.llm.coalesce import Coalescer
from neuroscribe.llm.factory import BackendPlugin
from neuroscribe.llm.local_batch import GenerationSpec, Runner
from neuroscribe.llm.recorder import CallRecorder, chat_params, plain_chat_format

DEFAULT_BATCH = 16
"""Prompts per batch unless ``[annotators."local/..."] concurrency`` says otherwise."""

PREFIX_TOKENS: Counter[tuple[str, str]] = Counter()
"""Process-wide prompt tokens per annotator: ``(name, "run")`` ran through the model,
``(name, "reused")`` did not, their keys and values being those of a prefix shared within a
batch or kept from the previous one (benchmarks read these; each backend also keeps its own
``tokens_run`` and ``tokens_reused``)."""

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _model_lock(model_name: str) -> threading.Lock:
    """One lock per model: backends of several purposes share the loaded model."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model_name, threading.Lock())


class LocalBackend:
    """``local/<model>``: a transformers causal LM running in this process."""

    capabilities = Capabilities(
        logprobs=True, prompt_distributions=True, json_schema=False, samples=True
    )

    def __init__(
        self,
        name: str,
        model_name: str,
        recorder: CallRecorder,
        dtype: str = "float32",
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self.name = name
        self.model_name = model_name
        self.recorder = recorder
        self.dtype = dtype
        self.max_concurrency = max(1, batch)
        """Most prompts in one batch: ``achat`` calls coalesced into one generation, prompts
        per forward pass of ``next_token_distributions_batch`` (1: one at a time)."""
        self._runner: Runner | None = None
        self._chats: Coalescer[ChatRequest, ChatResponse] = Coalescer(
            self._chat_batch, self.max_concurrency
        )
        self.tokens_run = 0
        """Prompt tokens this backend ran through the model (what the ledger's
        ``prompt_tokens`` of its calls add up to)."""
        self.tokens_reused = 0
        """Prompt tokens it did not run: their keys and values were those of a prefix run once
        for a whole batch, or kept from the previous batch (instructions, worked example and
        explanation are the same for every window of an explanation)."""

    @property
    def cache_identity(self) -> str:
        """What the answers depend on besides the request: the model and its dtype."""
        return f"{self.name}@{self.dtype}"

    @property
    def loaded(self) -> Any:
        from neuroscribe.models import load_model

        loaded = load_model(self.model_name, None, self.dtype)
        if not loaded.is_causal:
            raise BadInput(f"{self.name}: '{self.model_name}' is not a causal (chat) model")
        return loaded

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.loaded.model, max_rows=self.max_concurrency)
        return self._runner

    def format_chat(self, messages: tuple[Message, ...], continue_final: bool = False) -> str:
        """The prompt text the model sees. With ``continue_final`` the last (assistant) message is
        left open so the model continues it; rendered as generation prompt + content, which keeps
        the content verbatim at the end whatever the template does with closed messages."""
        tok = self.loaded.tokenizer
        head = messages[:-1] if continue_final else messages
        if getattr(tok, "chat_template", None) is None:
            return plain_chat_format(messages, continue_final)
        convo = [{"role": m.role, "content": m.content} for m in head]
        text = tok.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        return text + messages[-1].content if continue_final else text

    def chat(self, request: ChatRequest) -> ChatResponse:
        (result,) = self._chat_batch([request])
        if isinstance(result, BaseException):
            raise result
        return result

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """``chat``, batched with the other requests in flight on the loop; the model runs in a
        worker thread, so the event loop stays free."""
        return await self._chats.submit(request)

    def _chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse | Exception]:
        keys = [r.request_hash(self.cache_identity) for r in requests]
        return answer_batch(
            self.recorder,
            keys,
            [chat_params(r) for r in requests],
            CHAT,
            lambda todo: self._generate([requests[i] for i in todo]),
        )

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Completions of many requests in one batched generation (seeded per request)."""
        lm = self.loaded
        tok = lm.tokenizer
        prompts = [
            list(tok(self.format_chat(r.messages), add_special_tokens=False)["input_ids"])
            for r in requests
        ]
        specs = [GenerationSpec(r.n, r.max_tokens, r.temperature, r.seed) for r in requests]
        eos = _eos_ids(tok, lm.model)
        with _model_lock(self.model_name):
            samples, runs = self.runner.generate(prompts, specs, eos)
        out = []
        for prompt, rows, run, r in zip(prompts, samples, runs, requests, strict=True):
            self._count(run, len(prompt) - run)
            logprobs = None
            if r.top_logprobs is not None:
                logprobs = self._top_logprobs(prompt, rows, r.top_logprobs)
            texts = tuple(
                _cut_at_stop(tok.decode(row, skip_special_tokens=True), r.stop) for row in rows
            )
            out.append(
                ChatResponse(
                    texts=texts,
                    logprobs=logprobs,
                    prompt_tokens=run,
                    completion_tokens=sum(len(row) for row in rows),
                )
            )
        return out

    def _top_logprobs(
        self, prompt: list[int], rows: list[list[int]], k: int
    ) -> tuple[tuple[TokenLogprobs, ...], ...]:
        """The ``k`` likeliest tokens and their log-probabilities at every completion token, from
        one forward pass over prompt + completion (only for requests that ask for them)."""
        tok = self.loaded.tokenizer
        full = [r for r in rows if r]
        queries = [prompt + r for r in full]
        steps = [list(range(len(prompt) - 1, len(prompt) - 1 + len(r))) for r in full]
        with _model_lock(self.model_name):
            tops = iter(self.runner.top_logprobs(queries, steps, k) if full else [])
        per_sample = []
        for row in rows:
            top = next(tops) if row else []
            per_sample.append(
                tuple(
                    TokenLogprobs(
                        token=tok.decode([t]),
                        top=tuple(
                            (tok.decode([i]), v if math.isfinite(v) else -1e9) for i, v in pairs
                        ),
                    )
                    for t, pairs in zip(row, top, strict=True)
                )
            )
        return tuple(per_sample)

    def next_token_distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """Probability of each candidate as the next token after each character offset.

        The distribution at offset ``p`` is read from the logits of the last prompt token that
        starts before ``p``; a token that also covers text after ``p`` would let the model see
        the future, so that is an error. Softmax is over the full vocabulary; the candidates'
        probabilities are returned as they are (callers renormalise and keep the mass).
        """
        (result,) = self.next_token_distributions_batch([(prompt, positions)], candidates)
        if isinstance(result, BaseException):
            raise result
        return result

    def next_token_distributions_batch(
        self, queries: Sequence[tuple[str, Sequence[int]]], candidates: Sequence[str]
    ) -> list[list[dict[str, float]] | Exception]:
        """``next_token_distributions`` of many ``(prompt, positions)`` queries in batched
        forward passes, each with its own cache entry and ledger row. A query that fails (no
        token boundary at one of its positions: ``ValueError``) fails alone."""
        keys = [
            content_hash(self.cache_identity, p, list(pos), list(candidates), length=32)
            for p, pos in queries
        ]
        params = [
            {
                "kind": "next_token_distributions",
                "prompt_chars": len(p),
                "positions": list(pos),
                "candidates": list(candidates),
            }
            for p, pos in queries
        ]
        # Stored unrounded: a cache primed from the warehouse must answer exactly as this call.
        answers = answer_batch(
            self.recorder,
            keys,
            params,
            COUNTED_DISTRIBUTIONS,
            lambda todo: self._distributions([queries[i] for i in todo], candidates),
        )
        return [a if isinstance(a, Exception) else a[0] for a in answers]

    def _distributions(
        self, queries: list[tuple[str, Sequence[int]]], candidates: Sequence[str]
    ) -> list[tuple[list[dict[str, float]], int] | Exception]:
        """Each query's distributions and the prompt tokens run through the model for it."""
        tok = self.loaded.tokenizer
        cand_ids = [_single_token_id(tok, c) for c in candidates]
        out: list[tuple[list[dict[str, float]], int] | Exception] = []
        good: list[tuple[int, list[int], list[int]]] = []  # (query, token ids, rows to read)
        for i, (prompt, positions) in enumerate(queries):
            try:
                ids, rows = self._rows(prompt, positions)
            except ValueError as e:
                out.append(e)
                continue
            out.append(ValueError("not computed"))  # replaced below
            good.append((i, ids, rows))
        if not good:
            return out
        with _model_lock(self.model_name):
            probs, runs = self.runner.distributions(
                [ids for _, ids, _ in good], [rows for _, _, rows in good], cand_ids
            )
        for (i, ids, _), p, run in zip(good, probs, runs, strict=True):
            self._count(run, len(ids) - run)
            out[i] = ([dict(zip(candidates, row, strict=True)) for row in p], run)
        return out

    def _rows(self, prompt: str, positions: Sequence[int]) -> tuple[list[int], list[int]]:
        """The prompt's token ids and, per character offset, the token whose logits to read."""
        enc = self.loaded.tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)
        starts = [s for s, _ in enc["offset_mapping"]]
        ends = [e for _, e in enc["offset_mapping"]]
        rows = []
        for p in positions:
            i = _last_token_starting_before(starts, p)
            if i is None or ends[i] > p:
                raise ValueError(f"{self.name}: no token boundary at character {p} of the prompt")
            rows.append(i)
        return list(enc["input_ids"]), rows

    def _count(self, run: int, reused: int) -> None:
        self.tokens_run += run
        self.tokens_reused += reused
        PREFIX_TOKENS[(self.name, "run")] += run
        PREFIX_TOKENS[(self.name, "reused")] += reused


def _last_token_starting_before(starts: list[int], offset: int) -> int | None:
    found = None
    for i, s in enumerate(starts):
        if s < offset:
            found = i
        else:
            break
    return found


def _single_token_id(tok: Any, text: str) -> int:
    ids = tok.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"candidate {text!r} is {len(ids)} tokens for this tokenizer, not 1")
    return int(ids[0])


def _eos_ids(tok: Any, model: Any) -> set[int]:
    ids = (tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None))
    flat: set[int] = set()
    for i in ids:
        if isinstance(i, list):
            flat.update(i)
        elif i is not None:
            flat.add(i)
    if tok.pad_token_id is not None:
        flat.add(tok.pad_token_id)
    return flat


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=len(text))
    return text[:cut]


def _make(
    name: str, model: str, recorder: CallRecorder, local_dtype: str, annotator: object
) -> LocalBackend:
    batch = getattr(annotator, "concurrency", None) or DEFAULT_BATCH
    return LocalBackend(name, model, recorder, local_dtype, batch)


def _check(name: str, model: str, annotator: object) -> None:
    """The model must resolve to files (it is not loaded)."""
    from neuroscribe.models import resolve_source

    resolve_source(model)


PLUGIN = BackendPlugin(make=_make, check=_check)
"""``local/<model>`` in ``registry.LLM_BACKENDS``."""
