"""Many prompts per forward pass of an in-process causal LM, their shared prefix run once.

``LocalBackend`` hands this module token ids, never text. Two kinds of work:

- ``Runner.distributions``: next-token probabilities at chosen rows of many prompts (the
  all-at-once simulator's windows, the fuzz judge's marked texts). The prompts' common prefix
  (instructions, worked example, often the explanation) runs once; the rest of every prompt is
  right-padded into one batch whose rows attend to that prefix. Right padding needs no mask:
  a causal model never lets a real token see the pads after it.
- ``Runner.generate``: sampled or greedy completions of many requests, each with its own ``n``,
  ``max_tokens``, temperature and seed. The common prefix runs once; the rest of every prompt is
  left-padded (masked) so that all rows end together; each prompt is prefilled once and its key
  and value rows are then repeated for its ``n`` samples; one forward per decoding step serves
  every unfinished row. Rows are dropped from the batch as they finish.

Equal to one prompt at a time up to floating-point rounding (other matrix shapes sum in another
order): attention over cached keys and values equals attention over recomputed ones, masked pads
get no weight, and position ids skip the pads. Sampling draws from one ``torch.Generator`` per
request, seeded with its seed, over exactly the rows ``model.generate`` would sample for that
request alone (all ``n`` rows at every step until the last of them ends), so a request's samples
do not depend on which other requests share its batch.

The last prefix run is kept (``PrefixStore``): the next call reuses its keys and values for the
tokens both share (at least ``MIN_REUSE``), e.g. the instructions every explanation's prompt
starts with.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_REUSE = 32
"""Shortest shared run of tokens worth reusing from the previous prefix."""


@dataclass(frozen=True)
class GenerationSpec:
    """One request's sampling settings."""

    n: int
    max_tokens: int
    temperature: float
    seed: int


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every sequence shares."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


class PrefixStore:
    """Keys and values (batch 1) of the last prefix run, per layer."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.layers: list[tuple[Any, Any]] = []


class Runner:
    """Batched forwards of one model; not thread-safe (the backend holds a lock around it)."""

    def __init__(self, model: Any, max_rows: int = 16, max_batch_tokens: int = 8192) -> None:
        self.model = model
        self.max_rows = max(1, max_rows)
        """Most prompts in one forward pass (1: one at a time)."""
        self.max_batch_tokens = max_batch_tokens
        """Most tokens (rows x padded length) in one forward pass: bounds memory."""
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next(
            (k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None
        )
        self.store = PrefixStore()

    # --- the shared prefix ---------------------------------------------------------------

    def prefix(self, tokens: list[int]) -> tuple[list[tuple[Any, Any]], int]:
        """Keys and values of ``tokens`` (batch 1), and how many tokens were run for them now
        (the rest reused from the stored prefix). Stores the result for the next call."""
        import torch

        if not tokens:
            return [], 0
        store, shared = self.store, 0
        limit = min(len(store.tokens), len(tokens))
        while shared < limit and store.tokens[shared] == tokens[shared]:
            shared += 1
        if shared < MIN_REUSE and shared < len(tokens):
            shared = 0
        layers = [(k[:, :, :shared], v[:, :, :shared]) for k, v in store.layers] if shared else []
        if len(tokens) > shared:
            cache = self._cache(layers, 1)
            self._forward(torch.tensor([tokens[shared:]]), cache, keep=1)
            layers = self._layers(cache)
        store.tokens, store.layers = list(tokens), layers
        return layers, len(tokens) - shared

    def _shared(self, prompts: Sequence[list[int]], limit: int) -> tuple[int, list[Any], list[int]]:
        """The prompts' common prefix (at most ``limit`` tokens): its length, its keys and
        values, and the tokens run per prompt (its suffix; the prefix, when run now, counts on
        the first prompt)."""
        p = max(0, min(common_prefix(prompts), limit))
        layers, prefix_run = self.prefix(list(prompts[0][:p]))
        runs = [len(x) - p for x in prompts]
        runs[0] += prefix_run
        return p, layers, runs

    # --- reading rows: next-token distributions, top log-probabilities -----------------------

    def distributions(
        self, prompts: Sequence[list[int]], rows: Sequence[list[int]], candidates: list[int]
    ) -> tuple[list[list[list[float]]], list[int]]:
        """For each prompt, the probability of each candidate id as the next token after each
        of its ``rows`` (softmax over the whole vocabulary), and the tokens run for it."""
        import torch

        def pick(logits: Any) -> list[list[float]]:
            probs: list[list[float]] = torch.softmax(logits, dim=-1)[:, candidates].tolist()
            return probs

        return self._read(prompts, rows, pick)

    def top_logprobs(
        self, prompts: Sequence[list[int]], rows: Sequence[list[int]], k: int
    ) -> list[list[list[tuple[int, float]]]]:
        """For each prompt, the ``k`` likeliest next tokens and their log-probabilities after
        each of its ``rows``."""
        import torch

        def top(logits: Any) -> list[list[tuple[int, float]]]:
            t = torch.topk(torch.log_softmax(logits, dim=-1), k)
            return [
                list(zip(i, v, strict=True))
                for i, v in zip(t.indices.tolist(), t.values.tolist(), strict=True)
            ]

        return self._read(prompts, rows, top)[0]

    def _read(
        self, prompts: Sequence[list[int]], rows: Sequence[list[int]], fn: Any
    ) -> tuple[list[Any], list[int]]:
        """``fn(float32 logits at a prompt's rows)`` for every prompt; the common prefix runs
        once (it must end before the first row read), the suffixes right-padded in batches."""
        import torch

        limit = min(min(min(r) for r in rows), min(len(x) for x in prompts) - 1)
        p, layers, runs = self._shared(prompts, limit)
        out: list[Any] = [None] * len(prompts)
        for group in self._groups([len(x) - p for x in prompts]):
            width = max(len(prompts[i]) - p for i in group)
            ids = torch.zeros((len(group), width), dtype=torch.long)
            for j, i in enumerate(group):
                ids[j, : len(prompts[i]) - p] = torch.tensor(prompts[i][p:])
            keep = sorted({r - p for i in group for r in rows[i]})
            where = {pos: k for k, pos in enumerate(keep)}
            logits = self._forward(ids, self._cache(layers, len(group)), keep=keep)
            for j, i in enumerate(group):
                out[i] = fn(logits[j, [where[r - p] for r in rows[i]]].float())
        return out, runs

    def _groups(self, lengths: list[int]) -> list[list[int]]:
        """Consecutive prompts, at most ``max_rows`` per forward and rows x longest under
        ``max_batch_tokens``."""
        groups: list[list[int]] = []
        cur: list[int] = []
        width = 0
        for i, n in enumerate(lengths):
            w = max(width, n)
            if cur and (len(cur) >= self.max_rows or w * (len(cur) + 1) > self.max_batch_tokens):
                groups.append(cur)
                cur, w = [], n
            cur.append(i)
            width = w
        if cur:
            groups.append(cur)
        return groups

    # --- generation ------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[list[int]], specs: Sequence[GenerationSpec], eos: set[int]
    ) -> tuple[list[list[list[int]]], list[int]]:
        """Per request, its ``n`` completions as token ids (cut before the first ``eos``), and
        the prompt tokens run for it."""
        import torch

        p, layers, runs = self._shared(prompts, min(len(x) for x in prompts) - 1)
        owner = [i for i, s in enumerate(specs) for _ in range(s.n)]  # request of each row
        cache, logits, mask, next_pos = self._prefill(prompts, p, layers, owner)
        gens = [torch.Generator().manual_seed(s.seed) for s in specs]
        first_row = [sum(s.n for s in specs[:i]) for i in range(len(specs))]
        tokens: list[list[int]] = [[] for _ in owner]
        done = [False] * len(owner)
        live = list(range(len(owner)))  # rows of the full batch still in the forward pass
        longest = max(s.max_tokens for s in specs)
        for step in range(longest):
            where = {row: k for k, row in enumerate(live)}
            for req, spec in enumerate(specs):
                mine = range(first_row[req], first_row[req] + spec.n)
                if all(done[x] for x in mine):
                    continue
                drawn = self._sample(logits, [where.get(x) for x in mine], spec, gens[req])
                for x, t in zip(mine, drawn, strict=True):
                    if done[x]:
                        continue
                    if t in eos:
                        done[x] = True
                        continue
                    tokens[x].append(t)
                    done[x] = len(tokens[x]) >= spec.max_tokens
            keep = [k for k, row in enumerate(live) if not done[row]]
            if not keep or step + 1 >= longest:
                break
            if len(keep) < len(live):
                sel = torch.tensor(keep)
                self._select(cache, sel)
                mask, next_pos = mask[sel], next_pos[sel]
                live = [live[k] for k in keep]
            ids = torch.tensor([[tokens[row][-1]] for row in live])
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=torch.long)], dim=1)
            logits = self._forward(ids, cache, keep=1, mask=mask, positions=next_pos[:, None])
            logits = logits[:, -1]
            next_pos = next_pos + 1
        out = [[tokens[first_row[r] + j] for j in range(s.n)] for r, s in enumerate(specs)]
        return out, runs

    def _prefill(
        self, prompts: Sequence[list[int]], p: int, layers: list[Any], owner: list[int]
    ) -> tuple[Any, Any, Any, Any]:
        """Every prompt's suffix after the shared ``p`` tokens, left-padded (masked, position
        ids skipping the pads) and run once; then its cache rows, mask and last logits repeated
        for each of its samples (``owner``: the prompt of each sample row). Returns the cache,
        the logits, the attention mask and each row's next position."""
        import torch

        rests = [x[p:] for x in prompts]
        width = max(len(r) for r in rests)
        ids = torch.zeros((len(rests), width), dtype=torch.long)
        mask = torch.zeros((len(rests), p + width), dtype=torch.long)
        mask[:, :p] = 1
        pos = torch.full((len(rests), width), p, dtype=torch.long)
        for i, rest in enumerate(rests):
            ids[i, width - len(rest) :] = torch.tensor(rest)
            mask[i, p + width - len(rest) :] = 1
            pos[i, width - len(rest) :] = torch.arange(p, p + len(rest))
        cache = self._cache(layers, len(rests))
        logits = self._forward(ids, cache, keep=1, mask=mask, positions=pos)[:, -1]
        index = torch.tensor(owner)
        self._select(cache, index)
        next_pos = torch.tensor([p + len(rests[i]) for i in owner])
        return cache, logits[index], mask[index], next_pos

    @staticmethod
    def _sample(logits: Any, rows: list[int | None], spec: GenerationSpec, gen: Any) -> list[int]:
        """One token for each of a request's rows, as ``model.generate`` draws them for that
        request alone: float32 scores over its ``n`` rows (a finished row, no longer in the
        batch, stands in with any live row: its draw is discarded but keeps the stream)."""
        import torch

        stand_in = next(r for r in rows if r is not None)
        scores = logits[[stand_in if r is None else r for r in rows]].float()
        if spec.temperature <= 0:
            return [int(t) for t in scores.argmax(dim=-1).tolist()]
        probs = torch.softmax(scores / spec.temperature, dim=-1)
        return [int(t) for t in torch.multinomial(probs, 1, generator=gen)[:, 0].tolist()]

    # --- plumbing --------------------------------------------------------------------------

    def _forward(
        self,
        ids: Any,
        cache: Any,
        keep: int | list[int],
        mask: Any | None = None,
        positions: Any | None = None,
    ) -> Any:
        import torch

        kwargs: dict[str, Any] = {self._cache_kw: cache, "use_cache": True}
        if mask is not None:
            kwargs["attention_mask"] = mask
        if positions is not None:
            kwargs["position_ids"] = positions
        if self._keep_kw is not None:
            kwargs[self._keep_kw] = keep if isinstance(keep, int) else torch.tensor(keep)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, **kwargs).logits
        if self._keep_kw is None:  # a model without logits_to_keep: all positions came back
            logits = logits[:, -keep:] if isinstance(keep, int) else logits[:, keep]
        return logits

    @staticmethod
    def _cache(layers: list[tuple[Any, Any]], batch: int) -> Any:
        """A fresh cache holding ``layers`` (batch 1) repeated for ``batch`` rows."""
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(layers):
            size = (batch, *k.shape[1:])
            cache.update(k.expand(size), v.expand(size), i)
        return cache

    @staticmethod
    def _layers(cache: Any) -> list[tuple[Any, Any]]:
        return [(item[0], item[1]) for item in cache]

    @staticmethod
    def _select(cache: Any, index: Any) -> None:
        cache.batch_select_indices(index)
