"""The score kinds computed from simulated activations: each one's name, definition, evaluation
splits and metric. They are registered in ``registry.SCORE_KINDS`` (in the order they are
stored); ``score_explanation`` computes every registered kind.

A kind's ``prepare`` sees the unit and its calibration windows (``ScoringContext``) and returns
the metric to run over the evaluation windows, or why the kind is undefined for this unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from neuroscribe.records import Split, UnitExamples
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.detection import (
    DETECTION_FRACTION,
    choose_cut,
    detection_metrics,
    window_max,
)
from neuroscribe.score.metrics import (
    Metric,
    MetricValue,
    Windows,
    explained_variance_calibrated,
    pearson_pooled,
)
from neuroscribe.score.precision import auprc_tokens, auprc_windows, f1_at_cut
from neuroscribe.score.vector import Vector, calibration_params

HELD_OUT = (Split.SCORE_TOP, Split.SCORE_RANDOM)


@dataclass(frozen=True)
class ScoringContext:
    """What a kind's metric may depend on besides its evaluation windows."""

    unit: UnitExamples
    calibration_true: Sequence[Sequence[float]]
    calibration_pred: Sequence[Sequence[float]]
    """True activations and predictions of the calibration windows that were simulated."""
    calibration_note: str | None
    """Why some calibration windows are missing, or None."""

    @cached_property
    def detection(self) -> tuple[float, float, str | None] | None:
        """(firing threshold, cut on the window max prediction chosen on the calibration
        windows, a note on the cut); None when the unit never fires."""
        if self.unit.stats.max <= 0:
            return None
        fire_at = DETECTION_FRACTION * self.unit.stats.max
        cut, note = choose_cut(
            window_max(self.calibration_true) >= fire_at, window_max(self.calibration_pred)
        )
        return fire_at, cut, note

    def calibration_reason(self) -> str | None:
        return f"calibration: {self.calibration_note}" if self.calibration_note else None

    def never_fires(self) -> str:
        return f"unit never fires (corpus max activation {self.unit.stats.max:g} <= 0)"


@dataclass(frozen=True)
class Prepared:
    """A kind's metric for one unit, or (``metric`` None) the reason it is undefined there."""

    metric: Metric | None
    note: str | None = None
    """With a metric: added to every value's reason; without: the reason itself."""
    vector: Vector | None = None
    """The same metric vectorised over pairs and resamples (``score.vector``); None: the
    scoring stage runs ``metric`` pair by pair (a plug-in kind may give only that)."""


@dataclass(frozen=True)
class ScoreKind:
    """One score kind, as registered in ``registry.SCORE_KINDS``."""

    name: str
    definition: str
    """What the value means; the warehouse README lists it."""
    splits: tuple[Split, ...]
    """The windows it is evaluated on (never the explain or validate split)."""
    prepare: Callable[[ScoringContext], Prepared]
    only_when_present: bool = False
    """Left out (no row) when the unit has no window of ``splits``; else stored NULL."""


def _pearson(ctx: ScoringContext) -> Prepared:
    return Prepared(pearson_pooled, vector=Vector("pearson"))


def _ev(ctx: ScoringContext) -> Prepared:
    def metric(t: Windows, p: Windows) -> MetricValue:
        return explained_variance_calibrated(ctx.calibration_true, ctx.calibration_pred, t, p)

    vector = Vector("explained_variance",
                    calibration_params(ctx.calibration_true, ctx.calibration_pred))
    return Prepared(metric, ctx.calibration_reason(), vector)


def _detection(kind: str, uses_cut: bool) -> Callable[[ScoringContext], Prepared]:
    """``uses_cut``: the metric reads the cut chosen on the calibration windows, so its values
    carry the notes on that choice (a threshold-free metric needs none)."""

    def prepare(ctx: ScoringContext) -> Prepared:
        if ctx.detection is None:
            return Prepared(None, ctx.never_fires())
        fire_at, cut, cut_note = ctx.detection
        metric = detection_metrics(fire_at, cut)[kind]
        vector = Vector(kind, (fire_at, cut))
        if not uses_cut:
            return Prepared(metric, vector=vector)
        notes = [n for n in (cut_note, ctx.calibration_reason()) if n]
        return Prepared(metric, "; ".join(notes) if notes else None, vector)

    return prepare


def _auprc(make: Callable[[float], Metric], family: str) -> Callable[[ScoringContext], Prepared]:
    def prepare(ctx: ScoringContext) -> Prepared:
        if ctx.detection is None:
            return Prepared(None, ctx.never_fires())
        return Prepared(make(ctx.detection[0]), vector=Vector(family, (ctx.detection[0],)))

    return prepare


def _f1(ctx: ScoringContext) -> Prepared:
    if ctx.detection is None:
        return Prepared(None, ctx.never_fires())
    fire_at, cut, cut_note = ctx.detection
    notes = [n for n in (cut_note, ctx.calibration_reason()) if n]
    return Prepared(f1_at_cut(fire_at, cut), "; ".join(notes) if notes else None,
                    Vector("f1", (fire_at, cut)))


CORR_TOP_RANDOM = ScoreKind(
    HEADLINE_SCORE,
    "Pearson r between true and simulated activations pooled over all tokens of the `score_top` "
    "and `score_random` windows (OpenAI's correlation score, "
    "`aggregate_scored_sequence_simulations`; not averaged per window; equal to OpenAI's to 1e-9)."
    " Not delphi's, which correlates against activations rounded to 0-10 integers",
    HELD_OUT,
    _pearson,
)
CORR_RANDOM = ScoreKind(
    "corr_random",
    "the same on `score_random` windows only",
    (Split.SCORE_RANDOM,),
    _pearson,
)
CORR_OOD = ScoreKind(
    "corr_ood",
    "the same on `score_ood` windows (second corpus), when given",
    (Split.SCORE_OOD,),
    _pearson,
    only_when_present=True,
)
EV_CALIBRATED = ScoreKind(
    "ev_calibrated",
    "explained variance (centred, 1 − SSE/SST, sklearn's `r2_score`; not OpenAI's uncentred "
    "`rsquared`) on `score_top` + `score_random` after a least-squares line fitted on the "
    "`calibrate` windows; may be negative",
    HELD_OUT,
    _ev,
)
DETECTION_BACC = ScoreKind(
    "detection_bacc",
    'balanced accuracy (TPR + TNR) / 2 of "fires when max simulated activation > cut" on the same '
    "windows and labels; the cut maximises balanced accuracy on the `calibrate` windows (ties: the"
    " cut nearest 5), or is the scale midpoint 5 when those windows hold one class or constant "
    "predictions (`reason` says so)",
    HELD_OUT,
    _detection("detection_bacc", uses_cut=True),
)
DETECTION_AUROC = ScoreKind(
    "detection_auroc",
    "windows as examples: a window *fires* when its max true activation ≥ 0.3 × the unit's max "
    "over the corpus (`units.max_activation`); its score is its max simulated activation. AUROC "
    "over the `score_top` + `score_random` windows (ties count half; sklearn's `roc_auc_score`)",
    HELD_OUT,
    _detection("detection_auroc", uses_cut=False),
)
AUPRC_TOKENS = ScoreKind(
    "auprc_tokens",
    "tokens as examples: a token *fires* when its true activation ≥ 0.3 × `units.max_activation`;"
    " its score is its simulated activation. Average precision, Σ (R_k − R_{k−1}) P_k over the "
    "distinct scores as thresholds (sklearn's `average_precision_score`; all-equal predictions "
    "score the share of firing tokens), over the tokens of the `score_top` + `score_random` "
    "windows. NULL when they hold one class only",
    HELD_OUT,
    _auprc(auprc_tokens, "auprc_tokens"),
)
AUPRC_WINDOWS = ScoreKind(
    "auprc_windows",
    "the same with windows as examples, labelled and scored as for `detection_auroc` (max true "
    "activation, max simulated activation)",
    HELD_OUT,
    _auprc(auprc_windows, "auprc_windows"),
)
F1_CALIBRATED = ScoreKind(
    "f1_calibrated",
    'F1, 2 TP / (2 TP + FP + FN) (sklearn\'s `f1_score`), of "fires when max simulated activation'
    ' > cut" on the same windows and labels, with the cut of `detection_bacc` (chosen on the '
    "`calibrate` windows); NULL when the scored windows hold one class only",
    HELD_OUT,
    _f1,
)
