"""``baseline/lexical``: predict 10 where a token is a word the explanation names, 0 elsewhere.

No LLM; deterministic. Words come from the explanation's quoted terms (kept even when they are
common words: ``the token "the"``) and its other words minus stop words and the vocabulary of
explanations themselves ("token", "words", "related"). Matching is case-insensitive on tokens
without leading space markers (`` ``, ``Ġ``, ``▁``, ``##``), with a naive plural rule ("zebras"
matches "zebra").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from neuroscribe.explain.ngram import term_key
from neuroscribe.records import Explanation, Simulation, Window
from neuroscribe.simulate.base import (
    BATCH_JOBS,
    SCALE_MAX,
    SimulateFailure,
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

STOP_WORDS = frozenset(
    """a an the and or nor but of to in on at by for from with as into onto than then that this
    these those it its is are was were be been being has have had do does did not no any all each
    such like including include includes especially e g i etc eg ie e.g i.e very often mostly
    usually typically mainly main thing find finds finding looks look looking detects detect
    token tokens word words phrase phrases term terms text texts mention mentions mentioning
    related relating relates refer refers referring reference references associated containing
    contains contain marked highlighted neuron detector pattern patterns fires activates
    other others various different specific particular certain similar same kind kinds type
    types form forms part parts""".split()  # noqa: SIM905 (a word list reads better)
)
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|(?<!\w)\'([^\']+)\'(?!\w)|`([^`]+)`')
_WORD = re.compile(r"\w+", re.UNICODE)

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig, SimulateConfig
    from neuroscribe.llm.base import Ledger


def explanation_terms(text: str) -> frozenset[str]:
    """Normalised words a token must equal (with plural variants) to be predicted active."""
    terms: set[str] = set()
    for groups in _QUOTED.findall(text):
        quoted = next(g for g in groups if g)
        words = [term_key(w) for w in quoted.split()] or []
        if len(words) == 1:
            terms.add(words[0])
        else:
            terms.update(w for w in words if w and w not in STOP_WORDS)
        key = term_key(quoted)
        if key and not key.replace(" ", "").isalnum():  # punctuation tokens, e.g. "()"
            terms.add(key)
    unquoted = _QUOTED.sub(" ", text)
    terms.update(w.lower() for w in _WORD.findall(unquoted) if w.lower() not in STOP_WORDS)
    return frozenset(v for t in terms if t for v in _variants(t))


def _variants(word: str) -> set[str]:
    out = {word}
    if len(word) > 3 and word.endswith("s"):
        out.add(word[:-1])
    elif word.isalpha():
        out.add(word + "s")
    return out


@lru_cache(maxsize=1 << 17)
def _key(token: str) -> str:
    """``term_key``, memoised: a corpus repeats its tokens across windows and units."""
    return term_key(token)


def _predictions(terms: frozenset[str], tokens: Sequence[str]) -> list[float]:
    return [SCALE_MAX if _key(t) in terms else 0.0 for t in tokens]


class LexicalSimulator(SimulatorBase):
    name = "baseline/lexical"
    max_concurrency = 1
    """No LLM: quick, in this process."""
    batch_jobs = BATCH_JOBS

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        """``simulate`` inline (it waits for nothing)."""
        return self.simulate(explanation, windows)

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return self.simulate_batch([(explanation, windows)])[0]

    def simulate_batch(
        self, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
    ) -> list[list[Simulation]]:
        """``simulate`` of every (explanation, windows) job, across units in one call."""
        out = []
        for explanation, windows in jobs:
            if explanation.status != "ok" or not explanation.text:
                out.append([
                    failed_simulation(explanation, self.name, w, None,
                                      SimulateFailure.NO_EXPLANATION)
                    for w in windows
                ])
                continue
            terms = explanation_terms(explanation.text)
            out.append([
                ok_simulation(explanation, self.name, w, None, _predictions(terms, w.tokens))
                for w in windows
            ])
        return out


class LexicalFuzzJudge(FuzzJudgeBase):
    """``baseline/lexical``: yes when a marked token is a word the explanation names."""

    name = "baseline/lexical"
    batch_jobs = BATCH_JOBS
    unavailable: dict[str, str] = {
        "fuzz_auroc": "no probabilities: baseline/lexical answers yes or no only"
    }

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        return self.judge_many([(explanation, items)], windows)[0]

    def judge_many(
        self, jobs: Sequence[tuple[Explanation, Sequence[FuzzItem]]], windows: Mapping[str, Window]
    ) -> list[list[FuzzVerdict]]:
        """``judge`` of every (explanation, items) job, across units in one call."""
        out = []
        for explanation, items in jobs:
            if explanation.status != "ok" or not explanation.text:
                out.append([failed_verdict(explanation, self.name, item,
                                           FuzzFailure.NO_EXPLANATION) for item in items])
                continue
            terms = explanation_terms(explanation.text)
            out.append([
                verdict(explanation, self.name, item, answer=any(
                    _key(windows[item.window_id].tokens[i]) in terms for i in item.marked))
                for item in items
            ])
        return out


def _make(name: str, cfg: SimulateConfig, ledger: Ledger | None,
          annotator: AnnotatorConfig | None) -> LexicalSimulator:
    return LexicalSimulator()


def _fuzz_judge(name: str, cfg: SimulateConfig, ledger: Ledger | None,
                annotator: AnnotatorConfig | None) -> LexicalFuzzJudge:
    return LexicalFuzzJudge()


PLUGIN = SimulatorPlugin(make=_make, fuzz_judge=_fuzz_judge)
"""``baseline/lexical`` in ``registry.SIMULATORS``."""
