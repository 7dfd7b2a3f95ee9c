"""``embedding/all-minilm-l6-v2``: predict a token's activation by how close its context is in
meaning to the explanation (MiniLM sentence embeddings, ``neuroscribe.embed``).

No LLM and deterministic, so offline runs have a simulator that understands more than exact
words ("animals" predicts " horse"). Each token is embedded twice, in one batch:

- its *word*: the whole word the token belongs to (sub-word pieces joined, so "ze"+"bra" reads
  "zebra");
- its *context*: the text of tokens ``i - CONTEXT_BEFORE .. i``, which disambiguates the word
  ("river bank" against "bank account") without seeing anything after the token.

Similarity is ``WORD_WEIGHT * cos(explanation, word) + (1 - WORD_WEIGHT) * cos(explanation,
context)``. On a planted unit firing on animal names in unrelated text (explanation "animals"),
the correlation with the truth was 0.86 from the word alone, 0.50 from the 3-token context alone
and 0.85 at the 0.7 blend, which keeps most of the word's precision and some context.

The prediction is ``clip(10 * cosine(explanation, context), 0, 10)``: the raw similarity, not a
fitted scale. The simulator interface has no unit, hence no calibration windows; every score is
either affine-invariant (correlation) or calibrates itself on the unit's calibration split
(``explained_variance_calibrated`` fits ``true ~ a * pred + b`` there; detection picks its cut
there). So calibration happens where it should, once, in scoring.

Contexts are embedded in batches and memoised per process: every explanation of a unit, from
every explainer, is simulated on the same windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from neuroscribe.explain.render import display_pieces
from neuroscribe.records import Explanation, Simulation, Window
from neuroscribe.simulate.base import (
    BATCH_JOBS,
    SCALE_MAX,
    SimulateFailure,
    Simulator,
    SimulatorBase,
    failed_simulation,
    ok_simulation,
)
from neuroscribe.simulate.fuzz import (
    FuzzFailure,
    FuzzItem,
    FuzzJudgeBase,
    FuzzVerdict,
    failed_verdict,
    verdict,
)
from neuroscribe.simulate.plugin import SimulatorPlugin

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig, SimulateConfig
    from neuroscribe.llm.base import Ledger

EMBEDDING_SIMULATOR = "embedding/all-minilm-l6-v2"
CONTEXT_BEFORE = 2
"""Tokens before the simulated one that its context includes."""
WORD_WEIGHT = 0.7
"""Weight of the word's similarity against the context's."""
BATCH_TEXTS = 20_000
"""Texts gathered across jobs before they are embedded together (well under ``MEMO_LIMIT``)."""
MEMO_LIMIT = 200_000
"""Context embeddings kept per process (about 300 MB at 384 float32 values each)."""


def token_contexts(tokens: Sequence[str]) -> list[str]:
    """One short text per token: the token and the ``CONTEXT_BEFORE`` tokens before it."""
    pieces = display_pieces(tokens)
    out = []
    for i in range(len(pieces)):
        text = " ".join("".join(pieces[max(0, i - CONTEXT_BEFORE) : i + 1]).split())
        out.append(text or pieces[i])
    return out


def token_words(tokens: Sequence[str]) -> list[str]:
    """For each token, the whole word it is part of (a word starts at a piece with a leading
    space, or after a piece ending in one)."""
    pieces = display_pieces(tokens)
    words: list[str] = []
    span: list[int] = []

    def close() -> None:
        text = "".join(pieces[j] for j in span).strip()
        words.extend(text or pieces[j] for j in span)
        span.clear()

    for i, p in enumerate(pieces):
        if span and (p[:1].isspace() or pieces[i - 1][-1:].isspace()):
            close()
        span.append(i)
    if span:
        close()
    return words


class EmbeddingSimulator(SimulatorBase):
    name = EMBEDDING_SIMULATOR
    max_concurrency = 1
    """One embedding model in this process, batched over an explanation's windows."""
    batch_jobs = BATCH_JOBS

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        """``simulate`` in a worker thread, so the event loop stays free while the model runs."""
        return await asyncio.to_thread(self.simulate, explanation, windows)

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts`` (memoised), ``[len(texts), 384]``."""
        from neuroscribe.embed import embed_texts

        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            if len(self._memo) + len(todo) > MEMO_LIMIT:
                self._memo.clear()
            for text, row in zip(todo, embed_texts(todo, self.batch_size), strict=True):
                self._memo[text] = row
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return self.simulate_batch([(explanation, windows)])[0]

    def simulate_batch(
        self, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
    ) -> list[list[Simulation]]:
        """``simulate`` of every (explanation, windows) job, across units: every explanation,
        word and context of the batch is embedded in one call (each distinct text once)."""
        out: list[list[Simulation]] = []
        texts: list[str] = []
        start = 0
        for i, (explanation, windows) in enumerate(jobs):
            if explanation.status == "ok" and explanation.text:
                texts.append(explanation.text)
                for w in windows:
                    texts += [*token_words(w.tokens), *token_contexts(w.tokens)]
            if len(texts) >= BATCH_TEXTS or i == len(jobs) - 1:
                self.embed(texts)  # fills the memo in one batched pass
                out += [self._simulate_embedded(e, ws) for e, ws in jobs[start : i + 1]]
                texts, start = [], i + 1
        return out

    def _simulate_embedded(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        if explanation.status != "ok" or not explanation.text:
            return [
                failed_simulation(explanation, self.name, w, None, SimulateFailure.NO_EXPLANATION)
                for w in windows
            ]
        words = [x for w in windows for x in token_words(w.tokens)]
        contexts = [x for w in windows for x in token_contexts(w.tokens)]
        vectors = self.embed([explanation.text, *words, *contexts])
        n = len(words)
        similarity = (WORD_WEIGHT * (vectors[1 : 1 + n] @ vectors[0])
                      + (1 - WORD_WEIGHT) * (vectors[1 + n :] @ vectors[0]))
        values = np.clip(SCALE_MAX * similarity, 0.0, SCALE_MAX)
        out, start = [], 0
        for w in windows:
            end = start + len(w.tokens)
            out.append(ok_simulation(explanation, self.name, w, None, values[start:end].tolist()))
            start = end
        return out


class EmbeddingFuzzJudge(FuzzJudgeBase):
    """``embedding/all-minilm-l6-v2``: mean similarity of the marked tokens to the explanation."""

    name = EMBEDDING_SIMULATOR
    batch_jobs = BATCH_JOBS
    unavailable: dict[str, str] = {
        "fuzz_bacc": f"no yes/no answer: {EMBEDDING_SIMULATOR} gives a similarity without a "
        "natural threshold (see fuzz_auroc)"
    }

    def __init__(self, simulator: Simulator | None = None) -> None:
        self.simulator = simulator or EmbeddingSimulator()

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        return self.judge_many([(explanation, items)], windows)[0]

    def judge_many(
        self, jobs: Sequence[tuple[Explanation, Sequence[FuzzItem]]], windows: Mapping[str, Window]
    ) -> list[list[FuzzVerdict]]:
        """``judge`` of every (explanation, items) job, the simulations batched across units."""
        ids = [list(dict.fromkeys(item.window_id for item in items)) for _, items in jobs]
        work = [(e, [windows[w] for w in mine]) for (e, _), mine in zip(jobs, ids, strict=True)]
        simulated = self.simulator.simulate_batch(work)
        out = []
        for (explanation, items), mine, sims in zip(jobs, ids, simulated, strict=True):
            by_window = dict(zip(mine, sims, strict=True))
            verdicts = []
            for item in items:
                sim = by_window[item.window_id]
                if sim.status != "ok":
                    verdicts.append(
                        failed_verdict(explanation, self.name, item, FuzzFailure.NO_EXPLANATION)
                    )
                    continue
                mean = float(np.mean([sim.predictions[i] for i in item.marked]))
                verdicts.append(verdict(explanation, self.name, item, confidence=mean))
            out.append(verdicts)
        return out


def _make(name: str, cfg: SimulateConfig, ledger: Ledger | None,
          annotator: AnnotatorConfig | None) -> EmbeddingSimulator:
    return EmbeddingSimulator()


def _fuzz_judge(name: str, cfg: SimulateConfig, ledger: Ledger | None,
                annotator: AnnotatorConfig | None) -> EmbeddingFuzzJudge:
    return EmbeddingFuzzJudge()


PLUGIN = SimulatorPlugin(make=_make, fuzz_judge=_fuzz_judge)
"""``embedding/all-minilm-l6-v2`` in ``registry.SIMULATORS``."""
