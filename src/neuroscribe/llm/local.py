"""In-process chat model (transformers), loaded through ``neuroscribe.models.load_model``.

It has the logits, so besides sampling it gives exact next-token distributions at any position
inside a prompt from one forward pass: what the all-at-once simulator needs. The model is cached
per process, so the subject and this annotator share one copy when they name the same model.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Capabilities, ChatRequest, ChatResponse, Message, TokenLogprobs
from neuroscribe.llm.cache import CHAT, COUNTED_DISTRIBUTIONS
from neuroscribe.llm.factory import BackendPlugin
from neuroscribe.llm.recorder import CallRecorder, chat_params, plain_chat_format

PREFIX_TOKENS: Counter[tuple[str, str]] = Counter()
"""Process-wide prompt tokens of distribution calls per annotator: ``(name, "run")`` ran through
the model, ``(name, "reused")`` were skipped by prefix key/value reuse (benchmarks read these;
each backend also keeps its own ``tokens_run`` and ``tokens_reused``)."""


class LocalBackend:
    """``local/<model>``: a transformers causal LM running in this process."""

    capabilities = Capabilities(logprobs=True, prompt_distributions=True, json_schema=False)
    max_concurrency = 1
    """One model in this process: calls run one at a time."""

    def __init__(
        self, name: str, model_name: str, recorder: CallRecorder, dtype: str = "float32"
    ) -> None:
        self.name = name
        self.model_name = model_name
        self.recorder = recorder
        self.dtype = dtype
        self._kv: tuple[list[int], Any] | None = None
        """Token ids and key/value cache of the last prompt scored (see _forward_reusing_prefix)."""
        self.tokens_run = 0
        """Prompt tokens this backend ran through the model for distributions (what the ledger's
        ``prompt_tokens`` of those calls add up to)."""
        self.tokens_reused = 0
        """Prompt tokens it did not run because their keys and values were reused from the
        previous prompt (the prefix shared by every window of an explanation)."""

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
        return self.recorder.run(
            request.request_hash(self.cache_identity), chat_params(request),
            lambda: self._generate(request), CHAT,
        )

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """``chat`` in a worker thread, so the event loop stays free while the model runs."""
        return await asyncio.to_thread(self.chat, request)

    def _generate(self, request: ChatRequest) -> ChatResponse:
        import torch

        lm = self.loaded
        tok, model = lm.tokenizer, lm.model
        prompt = self.format_chat(request.messages)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        sample = request.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "do_sample": sample,
            "num_return_sequences": request.n,  # the n samples run as one batch
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            "return_dict_in_generate": True,
            "output_logits": request.top_logprobs is not None,
        }
        if sample:
            kwargs.update(temperature=request.temperature, top_p=1.0, top_k=0)
        # fork_rng: seed this call without disturbing the caller's global RNG state.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(request.seed)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        new = out.sequences[:, ids.shape[1] :]
        texts, n_completion = [], 0
        eos = _eos_ids(tok, model)
        for row in new.tolist():
            length = next((i for i, t in enumerate(row) if t in eos), len(row))
            n_completion += length
            texts.append(_cut_at_stop(tok.decode(row[:length], skip_special_tokens=True),
                                      request.stop))
        logprobs = None
        if request.top_logprobs is not None:
            logprobs = _top_logprobs(tok, new, out.logits, request.top_logprobs)
        return ChatResponse(
            texts=tuple(texts), logprobs=logprobs,
            prompt_tokens=int(ids.shape[1]), completion_tokens=n_completion,
        )

    def next_token_distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """Probability of each candidate as the next token after each character offset.

        The distribution at offset ``p`` is read from the logits of the last prompt token that
        starts before ``p``; a token that also covers text after ``p`` would let the model see
        the future, so that is an error. Softmax is over the full vocabulary; the candidates'
        probabilities are returned as they are (callers renormalise and keep the mass).
        """
        key = content_hash(
            self.cache_identity, prompt, list(positions), list(candidates), length=32
        )
        params = {
            "kind": "next_token_distributions",
            "prompt_chars": len(prompt),
            "positions": list(positions),
            "candidates": list(candidates),
        }
        # Stored unrounded: a cache primed from the warehouse must answer exactly as this call.
        dists, _ = self.recorder.run(
            key, params, lambda: self._distributions(prompt, positions, candidates),
            COUNTED_DISTRIBUTIONS,
        )
        return dists

    def _distributions(
        self, prompt: str, positions: Sequence[int], candidates: Sequence[str]
    ) -> tuple[list[dict[str, float]], int]:
        """The distributions, and the prompt tokens run through the model for them (the whole
        prompt less the prefix whose key/value cache was reused)."""
        import torch

        tok, model = self.loaded.tokenizer, self.loaded.model
        cand_ids = [_single_token_id(tok, c) for c in candidates]
        enc = tok(prompt, return_offsets_mapping=True, add_special_tokens=False,
                  return_tensors="pt")
        starts = [s for s, _ in enc["offset_mapping"][0].tolist()]
        ends = [e for _, e in enc["offset_mapping"][0].tolist()]
        rows = []
        for p in positions:
            i = _last_token_starting_before(starts, p)
            if i is None or ends[i] > p:
                raise ValueError(f"{self.name}: no token boundary at character {p} of the prompt")
            rows.append(i)
        ids = enc["input_ids"]
        with torch.inference_mode():
            logits, start = self._forward_reusing_prefix(model, ids, min(rows))
        probs = torch.softmax(logits[[r - start for r in rows]].float(), dim=-1)[:, cand_ids]
        run = int(ids.shape[1]) - start
        self.tokens_run += run
        self.tokens_reused += start
        PREFIX_TOKENS[(self.name, "run")] += run
        PREFIX_TOKENS[(self.name, "reused")] += start
        return [dict(zip(candidates, row, strict=True)) for row in probs.tolist()], run


    def _forward_reusing_prefix(self, model: Any, ids: Any, first_row: int) -> tuple[Any, int]:
        """Logits for ``ids[0, start:]``, reusing the key/value cache of the previous prompt for
        the tokens both prompts share (the simulator's instructions, example and explanation
        are the same for every window of an explanation; only the token table differs).

        Exact: attention over cached keys and values equals attention over recomputed ones. The
        logits of reused tokens are not recomputed, so reuse stops before ``first_row``.
        """
        from transformers import DynamicCache

        tokens = ids[0].tolist()
        shared = 0
        kv = self._kv
        if kv is not None:
            prev = kv[0]
            limit = min(len(prev), len(tokens) - 1, first_row)
            while shared < limit and prev[shared] == tokens[shared]:
                shared += 1
        if kv is not None and shared >= 32:
            cache = kv[1]
            extra = cache.get_seq_length() - shared
            if extra > 0:
                cache.crop(-extra)  # transformers 5: a negative count of tokens to drop
        else:
            cache, shared = DynamicCache(), 0
        out = model(input_ids=ids[:, shared:], past_key_values=cache, use_cache=True)
        self._kv = (tokens, out.past_key_values)
        return out.logits[0], shared


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
    ids = {tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
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


def _top_logprobs(tok: Any, new: Any, logits: Any, k: int) -> tuple[tuple[TokenLogprobs, ...], ...]:
    import torch

    per_sample = []
    for b in range(new.shape[0]):
        steps = []
        for t, step_logits in enumerate(logits):
            lp = torch.log_softmax(step_logits[b].float(), dim=-1)
            top = torch.topk(lp, k)
            pairs = tuple(
                (tok.decode([i]), float(v) if math.isfinite(v) else -1e9)
                for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            )
            steps.append(TokenLogprobs(token=tok.decode([int(new[b, t])]), top=pairs))
        per_sample.append(tuple(steps))
    return tuple(per_sample)


def _make(
    name: str, model: str, recorder: CallRecorder, local_dtype: str, annotator: object
) -> LocalBackend:
    return LocalBackend(name, model, recorder, local_dtype)


def _check(name: str, model: str, annotator: object) -> None:
    """The model must resolve to files (it is not loaded)."""
    from neuroscribe.models import resolve_source

    resolve_source(model)


PLUGIN = BackendPlugin(make=_make, check=_check)
"""``local/<model>`` in ``registry.LLM_BACKENDS``."""
