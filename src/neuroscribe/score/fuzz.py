"""Fuzzing scores from a judge's verdicts on marked windows (``neuroscribe.simulate.fuzz``).

Each fuzz item is one held-out window with some tokens marked; its label is whether the marks
are the tokens where the unit fires (*correct*) or as many tokens where it does not. Every
window gives one item of each label, so the classes are balanced by construction.

- ``fuzz_bacc``: balanced accuracy, (TPR + TNR) / 2, of the judge's yes/no answers against the
  labels (sklearn's ``balanced_accuracy_score``). A judge that ignores the marks scores 0.5.
- ``fuzz_auroc``: AUROC (ties count half; sklearn's ``roc_auc_score``) of the judge's
  confidence (P(yes), or the embedding judge's similarity) against the same labels.

Items whose verdict failed are left out (never counted wrong) and named in ``reason``; so are
answer-less items for ``fuzz_bacc``. ``fuzz_auroc`` needs a confidence on every item it scores:
if some answered item has none (an endpoint whose top log-probabilities held neither word) it is
NULL rather than computed on a biased subset. Both are NULL when the items left hold one label,
and with the judge's reason when it cannot give that kind (``FuzzJudge.unavailable``).
``n_windows`` counts the windows the value rests on and ``n_tokens`` their tokens; the interval
is a percentile bootstrap that resamples windows, each with its items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Score
from neuroscribe.score.detection import auroc, balanced_accuracy
from neuroscribe.score.jobs import Job, Row, run_jobs
from neuroscribe.score.metrics import MetricValue, Windows, pool
from neuroscribe.score.vector import Vector

if TYPE_CHECKING:
    from neuroscribe.simulate.fuzz import FuzzVerdict

FUZZ_KINDS: dict[str, str] = {
    "fuzz_bacc": (
        'fuzzing (delphi\'s, with both items of a pair on one window, as its `fuzz_type="active"`):'
        " for each `score_top` or `score_random` window where the unit fires on some tokens (true "
        "activation ≥ 0.3 × `units.max_activation`) and on at most half of them, at most "
        "`score.fuzz_windows` windows (top windows first), two items on that same window: one "
        "marks the firing tokens, one marks as many silent tokens chosen at random (seeded by the "
        "run seed, the unit and the window). The simulator sees the explanation and the window "
        "with the marked tokens in `<< >>` (prompt `fuzz`) and answers yes or no: do the marks "
        "match the explanation? Balanced accuracy of its answers (sklearn's "
        "`balanced_accuracy_score`); a simulator that ignores the marks scores 0.5. "
        "`baseline/lexical` answers yes when a marked token is a word the explanation names. NULL "
        "for `embedding/all-minilm-l6-v2` (a similarity has no yes/no threshold)"
    ),
    "fuzz_auroc": (
        "AUROC (ties count half; sklearn's `roc_auc_score`) on the same items of the simulator's "
        'P(yes): from the next-token distribution over "yes"/"no" right after the prompt '
        "(`local`), or from the first answer token's `top_logprobs` (`openai` with `logprobs = "
        "true`); for the embedding simulator, the mean similarity of the marked tokens to the "
        "explanation. NULL with a reason for simulators that only answer yes or no "
        "(`baseline/lexical`, `openai` without logprobs), and when some answered item has no "
        "probability"
    ),
}
"""The fuzzing score kinds, with their definitions (stored in ``scores`` like ``SCORE_KINDS``)."""


def _bacc(true: Windows, pred: Windows) -> MetricValue:
    t, p = pool(true, pred)
    return balanced_accuracy(t > 0.5, p > 0.5)


def _auroc(true: Windows, pred: Windows) -> MetricValue:
    t, p = pool(true, pred)
    return auroc(t > 0.5, p)


def _by_window(
    verdicts: Sequence[FuzzVerdict], value: str
) -> tuple[list[list[float]], list[list[float]], dict[str, int]]:
    """Labels and values (``answer`` or ``confidence``) grouped by window in first-seen order,
    for the verdicts that have that value, and each used window's token count."""
    true: dict[str, list[float]] = {}
    pred: dict[str, list[float]] = {}
    tokens: dict[str, int] = {}
    for v in verdicts:
        x = getattr(v, value)
        if v.status != "ok" or x is None:
            continue
        w = v.item.window_id
        true.setdefault(w, []).append(1.0 if v.item.correct else 0.0)
        pred.setdefault(w, []).append(float(x))
        tokens[w] = v.item.n_tokens
    return list(true.values()), list(pred.values()), tokens


def _note(n_left_out: int, total: int, what: str) -> str | None:
    return f"{n_left_out} of {total} items {what}" if n_left_out else None


def _join(*reasons: str | None) -> str | None:
    present = [r for r in reasons if r]
    return "; ".join(present) if present else None


@dataclass(frozen=True)
class FuzzPair:
    """One explanation's verdicts from one simulator's judge, with what ``fuzz_scores`` needs."""

    explanation_id: str
    simulator: str
    verdicts: Sequence[FuzzVerdict]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Kinds the judge cannot give, with the reason stored with their NULL."""
    no_items: str | None = None
    """The reason when the unit gave no item (both kinds NULL)."""


def fuzz_scores(
    explanation_id: str,
    simulator: str,
    verdicts: Sequence[FuzzVerdict],
    cfg: ScoreConfig,
    seed: int = 0,
    unavailable: Mapping[str, str] | None = None,
    no_items: str | None = None,
) -> list[Score]:
    """``fuzz_bacc`` and ``fuzz_auroc`` of one explanation under one simulator.

    ``unavailable`` maps a kind the judge cannot give to the reason stored with its NULL;
    ``no_items`` is the reason when the unit gave no item (both kinds NULL).
    """
    pair = FuzzPair(explanation_id, simulator, verdicts, unavailable or {}, no_items)
    return fuzz_scores_many([pair], cfg, seed)


def fuzz_scores_many(pairs: Sequence[FuzzPair], cfg: ScoreConfig, seed: int = 0) -> list[Score]:
    """``fuzz_scores`` of every pair, in order; the values and intervals of all pairs are
    computed together (``score.jobs``)."""
    rows: list[Row] = []
    jobs: list[Job] = []
    for pair in pairs:
        _pending(pair, rows, jobs)
    run_jobs(jobs, cfg, seed)
    return [
        Score(**row.fields, value=row.result.value,  # type: ignore[union-attr, arg-type]
              reason=_join(row.result.reason, *row.notes),  # type: ignore[union-attr]
              ci_low=row.ci[0], ci_high=row.ci[1])
        for row in rows
    ]


def _pending(pair: FuzzPair, rows: list[Row], jobs: list[Job]) -> None:
    """The pair's two rows, each with its value decided or a job to compute it."""
    verdicts, unavailable = pair.verdicts, pair.unavailable
    for v in verdicts:
        if v.explanation_id != pair.explanation_id or v.simulator != pair.simulator:
            raise ValueError(
                f"verdict of ({v.explanation_id}, {v.simulator}), not "
                f"({pair.explanation_id}, {pair.simulator})"
            )
    total = len(verdicts)
    n_failed = sum(v.status != "ok" for v in verdicts)
    failed_note = _note(n_failed, total, "failed")
    for kind, field_name, metric in (
        ("fuzz_bacc", "answer", _bacc),
        ("fuzz_auroc", "confidence", _auroc),
    ):
        true, pred, tokens = _by_window(verdicts, field_name)
        used = sum(len(t) for t in true)
        result: MetricValue | None = None
        if kind in unavailable:
            result, true, pred, tokens = MetricValue(None, unavailable[kind]), [], [], {}
        elif not verdicts:
            result = MetricValue(None, pair.no_items or "no fuzz items")
        elif kind == "fuzz_auroc" and used < total - n_failed:
            missing = total - n_failed - used
            result = MetricValue(None, f"{missing} of {total} items without a probability")
            true, pred, tokens = [], [], {}
        answerless = total - n_failed - used if kind == "fuzz_bacc" else 0
        row = Row(
            {"explanation_id": pair.explanation_id, "simulator": pair.simulator, "kind": kind,
             "n_tokens": int(np.sum(list(tokens.values()))) if tokens else 0,
             "n_windows": len(true)},
            (failed_note if verdicts and kind not in unavailable else None,
             _note(answerless, total, "without a yes/no answer")
             if kind not in unavailable else None),
            result,
        )
        rows.append(row)
        if result is None and true:
            jobs.append(Job(row, Vector(kind), metric, true, pred))
        elif result is None:
            row.result = metric(true, pred)
