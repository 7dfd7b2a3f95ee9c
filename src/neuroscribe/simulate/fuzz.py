"""Fuzzing: shown a held-out window with some tokens marked, does the simulator judge that the
marked tokens are the ones the explanation describes?

Items (``build_fuzz_items``): for each held-out window of the score splits in which the unit
fires, two items on the *same* window. The *correct* item marks the tokens where the unit fires
(true activation >= ``DETECTION_FRACTION`` x the unit's corpus max, the detection threshold); the
*incorrect* item marks as many tokens chosen at random among those where it does not (seeded by
the run seed, the unit and the window, so the same inputs give the same marks). Both items show
the same text, so the text alone cannot tell them apart: only the marks can (delphi's
``fuzz_type="active"``; delphi's default instead marks random tokens of silent windows, which a
judge can answer from the text alone, like detection). Windows whose firing tokens outnumber
their silent ones have no incorrect item of equal size and are skipped. The explain split is
never used.

Judges (``make_fuzz_judge``: each simulator plug-in makes its own, see ``SimulatorPlugin``), picked
by capability, never by model name:

- LLM backends (``simulate.fuzz_llm``) with next-token distributions (``local``):
  P(yes) = p("yes") / (p("yes") + p("no")) right after the prompt, from one forward pass; the
  answer is yes when P(yes) > 0.5;
- chat with ``top_logprobs``: the same from the first answer token's top log-probabilities,
  the answer from the text when neither word is among them;
- chat without logprobs (JSON mode): the yes/no answer only, no probability;
- ``baseline/lexical`` (no LLM): yes when a marked token is a word the explanation names;
- ``embedding/all-minilm-l6-v2`` (no LLM): the mean MiniLM similarity of the marked tokens to
  the explanation (``EmbeddingSimulator``) as a confidence, no yes/no answer (similarity has no
  natural threshold).

``FuzzJudge.unavailable`` names the score kinds a judge cannot give and why; scoring stores
them as NULL with that reason.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Literal, Protocol

import numpy as np

from neuroscribe.explain.render import display_pieces, mark_runs
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import for_unit
from neuroscribe.records import Explanation, PromptRef, Record, Split, UnitExamples, Window
from neuroscribe.score.detection import DETECTION_FRACTION

FUZZ_SPLITS = (Split.SCORE_TOP, Split.SCORE_RANDOM)
"""The held-out splits whose windows are marked (as for correlation and detection)."""
ANSWERS = ("yes", "no")


class FuzzFailure(StrEnum):
    """Typed reasons a fuzz item got no verdict; such items are left out of the scores."""

    NO_EXPLANATION = "no_explanation"
    BACKEND_ERROR = "backend_error"
    UNPARSEABLE = "unparseable"
    """The answer was neither yes nor no."""
    NO_ANSWER_MASS = "no_answer_mass"
    """The model put no probability on "yes" or "no" (next-token distributions)."""


class FuzzItem(Record):
    """One held-out window with some of its tokens marked."""

    window_id: str
    split: Split
    marked: tuple[int, ...]
    """Positions of the marked tokens, ascending."""
    correct: bool
    """The marks are the tokens where the unit fires (else as many silent tokens)."""
    n_tokens: int


class FuzzVerdict(Record):
    """A judge's verdict on one fuzz item of one explanation."""

    explanation_id: str
    simulator: str
    item: FuzzItem
    status: Literal["ok", "failed"] = "ok"
    answer: bool | None = None
    """Judged "the marks match the explanation"; None when the judge gives no yes/no answer."""
    confidence: float | None = None
    """Grows with the judge's belief that the marks match: P(yes) for LLM judges with
    probabilities, mean similarity for the embedding judge; None otherwise."""
    failure: str | None = None
    prompt: PromptRef | None = None


def build_fuzz_items(unit: UnitExamples, max_windows: int, seed: int) -> list[FuzzItem]:
    """Correct and incorrect items, two per window, on at most ``max_windows`` windows of the
    score splits in which the unit fires (top windows first, by rank, then random ones)."""
    if unit.stats.max <= 0 or max_windows <= 0:
        return []
    fire_at = DETECTION_FRACTION * unit.stats.max
    items: list[FuzzItem] = []
    for w in unit.in_splits(*FUZZ_SPLITS):
        if w.split == Split.EXPLAIN:  # in_splits never returns it; the guard states the rule
            raise AssertionError("fuzz items must come from held-out windows")
        firing = [i for i, a in enumerate(w.activations) if a >= fire_at]
        silent = [i for i, a in enumerate(w.activations) if a < fire_at]
        if not firing or len(firing) > len(silent):
            continue
        rng = np.random.default_rng(int(content_hash(seed, unit.unit.key, w.window_id), 16))
        decoys = sorted(int(i) for i in rng.choice(silent, size=len(firing), replace=False))
        for marked, correct in ((firing, True), (decoys, False)):
            items.append(
                FuzzItem(
                    window_id=w.window_id,
                    split=w.split,
                    marked=tuple(marked),
                    correct=correct,
                    n_tokens=len(w.activations),
                )
            )
        if len(items) >= 2 * max_windows:
            break
    return items


def marked_text(tokens: Sequence[str], marked: Sequence[int]) -> str:
    """The window as one line of running text, each run of marked tokens wrapped in << >>
    (a leading space stays outside the marks)."""
    return mark_runs(display_pieces(tokens), range(len(tokens)), set(marked))


def parse_answer(text: str) -> bool | None:
    """yes -> True, no -> False, from a bare word or a JSON ``{"answer": ...}``; else None."""
    body = text.strip()
    if body.startswith("{"):
        try:
            body = str(json.loads(body).get("answer", ""))
        except (json.JSONDecodeError, AttributeError):
            return None
    word = re.match(r"\W*(\w+)", body)
    if word is None:
        return None
    return {"yes": True, "no": False}.get(word.group(1).lower())


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": list(ANSWERS)}},
    "required": ["answer"],
    "additionalProperties": False,
}


class BasicFuzzJudge(Protocol):
    """What a simulator plug-in's fuzz judge must implement (``SimulatorPlugin.fuzz_judge``)."""

    name: str
    unavailable: dict[str, str]
    """Score kinds this judge cannot give, with the reason stored in their place."""

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]: ...


FuzzJobs = Sequence[tuple[Explanation, Sequence[FuzzItem]]]


class FuzzJudge(BasicFuzzJudge, Protocol):
    """What the fuzz stage calls (``make_fuzz_judge`` returns one): a judge with the batch
    members. ``FuzzJudgeBase`` gives their defaults; a plug-in's ``BasicFuzzJudge`` that does
    not derive from it gets them through ``JudgeOneJobAtATime``."""

    @property
    def batch_jobs(self) -> int:
        """(explanation, items) jobs the stage hands ``judge_many`` at once; the progress
        advances by each call."""
        ...

    def judge_many(self, jobs: FuzzJobs, windows: Mapping[str, Window]) -> list[list[FuzzVerdict]]:
        """``judge`` of every (explanation, items) job, in order, in one call."""
        ...


class FuzzJudgeBase(ABC):
    """The batch members' defaults: one job per call, judged by ``judge``. Judges that work
    across units (the in-process baselines batch; LLM judges pool their calls) override both."""

    name: str
    unavailable: dict[str, str]

    @abstractmethod
    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        """As ``BasicFuzzJudge.judge``."""

    @property
    def batch_jobs(self) -> int:
        return 1

    def judge_many(self, jobs: FuzzJobs, windows: Mapping[str, Window]) -> list[list[FuzzVerdict]]:
        out = []
        for e, items in jobs:
            with for_unit(e.unit_key):  # the judge's calls are its unit's
                out.append(self.judge(e, items, windows))
        return out


class JudgeOneJobAtATime(FuzzJudgeBase):
    """A plug-in's judge that implements only ``BasicFuzzJudge``, with the batch defaults of
    ``FuzzJudgeBase`` (``make_fuzz_judge`` wraps it; the plug-in implements nothing new)."""

    def __init__(self, judge: BasicFuzzJudge) -> None:
        self.inner = judge
        self.name = judge.name
        self.unavailable = judge.unavailable

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        return self.inner.judge(explanation, items, windows)


def judge_with_batch_members(judge: BasicFuzzJudge) -> FuzzJudge:
    """``judge`` itself when it derives from ``FuzzJudgeBase`` (it declares its batch members),
    else wrapped in ``JudgeOneJobAtATime``."""
    return judge if isinstance(judge, FuzzJudgeBase) else JudgeOneJobAtATime(judge)


def verdict(
    e: Explanation,
    judge: str,
    item: FuzzItem,
    answer: bool | None = None,
    confidence: float | None = None,
    prompt: PromptRef | None = None,
) -> FuzzVerdict:
    return FuzzVerdict(
        explanation_id=e.explanation_id,
        simulator=judge,
        item=item,
        answer=answer,
        confidence=confidence,
        prompt=prompt,
    )


def failed_verdict(
    e: Explanation, judge: str, item: FuzzItem, kind: FuzzFailure, prompt: PromptRef | None = None
) -> FuzzVerdict:
    return FuzzVerdict(
        explanation_id=e.explanation_id,
        simulator=judge,
        item=item,
        status="failed",
        failure=str(kind),
        prompt=prompt,
    )
