"""Score one explanation under one simulator: records in, ``Score`` records out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Score, Simulation, Split, UnitExamples, UnitWindow
from neuroscribe.registry import SCORE_KINDS
from neuroscribe.score.fuzz import FUZZ_KINDS
from neuroscribe.score.kinds import ScoreKind, ScoringContext
from neuroscribe.score.metrics import MetricValue, bootstrap_ci, pearson_pooled


def score_kinds() -> list[ScoreKind]:
    """Every registered score kind, in the order they are stored."""
    return [SCORE_KINDS.get_as(name, ScoreKind) for name in SCORE_KINDS]


def score_definitions() -> dict[str, str]:
    """Every score kind, with its definition: those computed from simulations (the registry),
    then fuzzing's (from verdicts)."""
    return {**{kind.name: kind.definition for kind in score_kinds()}, **FUZZ_KINDS}


def definitions_markdown() -> str:
    """The table of score kinds in ``warehouse/README.md``, as the code defines them (a test
    keeps the README equal to it)."""
    rows = [f"| `{name}` | {text} |" for name, text in score_definitions().items()]
    return "\n".join(["| kind | definition |", "|---|---|", *rows]) + "\n"


@dataclass(frozen=True)
class Aligned:
    """True activations and predictions of the windows that have a usable simulation."""

    true: list[tuple[float, ...]]
    pred: list[tuple[float, ...]]
    n_failed: int
    n_absent: int

    @property
    def n_tokens(self) -> int:
        return sum(len(t) for t in self.true)

    def coverage_note(self) -> str | None:
        """Why some windows are missing, or None when none are."""
        n_missing = self.n_failed + self.n_absent
        if not n_missing:
            return None
        total = len(self.true) + n_missing
        parts = [
            f"{n} {what}"
            for n, what in ((self.n_failed, "failed"), (self.n_absent, "not simulated"))
            if n
        ]
        return f"{n_missing} of {total} windows missing ({', '.join(parts)})"


def index_by_window(simulations: Sequence[Simulation]) -> dict[str, Simulation]:
    by_window: dict[str, Simulation] = {}
    for sim in simulations:
        if sim.window_id in by_window:
            raise ValueError(f"two simulations of window {sim.window_id}")
        by_window[sim.window_id] = sim
    return by_window


def check_pair(explanation_id: str, simulator: str, simulations: Sequence[Simulation]) -> None:
    for sim in simulations:
        if sim.explanation_id != explanation_id or sim.simulator != simulator:
            raise ValueError(
                f"simulation {sim.simulation_id} is of ({sim.explanation_id}, {sim.simulator}), "
                f"not ({explanation_id}, {simulator})"
            )


def align(windows: Sequence[UnitWindow], by_window: dict[str, Simulation]) -> Aligned:
    """Pair each window with its simulation; failed and absent simulations are left out."""
    true, pred = [], []
    n_failed = n_absent = 0
    for w in windows:
        sim = by_window.get(w.window_id)
        if sim is None:
            n_absent += 1
        elif sim.status != "ok":
            n_failed += 1
        elif len(sim.predictions) != len(w.activations):
            raise ValueError(
                f"simulation {sim.simulation_id}: {len(sim.predictions)} predictions for "
                f"{len(w.activations)} tokens of window {w.window_id}"
            )
        else:
            true.append(w.activations)
            pred.append(sim.predictions)
    return Aligned(true, pred, n_failed, n_absent)


def join_reasons(*reasons: str | None) -> str | None:
    present = [r for r in reasons if r]
    return "; ".join(present) if present else None


def score_explanation(
    explanation_id: str,
    simulator: str,
    unit: UnitExamples,
    simulations: Sequence[Simulation],
    cfg: ScoreConfig,
    seed: int = 0,
) -> list[Score]:
    """All scores (every kind in ``registry.SCORE_KINDS``) of one explanation under one
    simulator on one unit.

    ``simulations`` are this simulator's simulations of this explanation, at most one per window,
    matched to ``unit.windows`` by window id. A failed simulation, or a window with none, counts
    as missing: it is left out (never scored as zeros) and named in ``reason``, which is therefore
    also set on a defined score computed from only part of its windows. ``n_windows`` and
    ``n_tokens`` count what the value rests on (for ``ev_calibrated``: the evaluation windows).
    ``corr_ood`` is produced only when the unit has out-of-distribution windows. The detection
    kinds are NULL for a unit whose corpus max activation is not positive. Confidence
    intervals resample windows (``cfg.bootstrap`` times, level ``cfg.ci_level``, ``seed``).
    """
    check_pair(explanation_id, simulator, simulations)
    by_window = index_by_window(simulations)
    calibration = align(unit.in_splits(Split.CALIBRATE), by_window)
    ctx = ScoringContext(unit, calibration.true, calibration.pred, calibration.coverage_note())
    scores = []
    for kind in score_kinds():
        windows = unit.in_splits(*kind.splits)
        if kind.only_when_present and not windows:
            continue
        aligned = align(windows, by_window)
        prepared = kind.prepare(ctx)
        metric = prepared.metric
        note = prepared.note if metric is not None else None
        if not windows:
            result = MetricValue(None, f"no {' or '.join(s.value for s in kind.splits)} windows")
        elif metric is None:
            result = MetricValue(None, prepared.note)
        else:
            result = metric(aligned.true, aligned.pred)
        low, high = (None, None)
        if result.value is not None and metric is not None:
            low, high = bootstrap_ci(
                aligned.true, aligned.pred, metric, cfg.bootstrap, cfg.ci_level, seed
            )
        scores.append(
            Score(
                explanation_id=explanation_id,
                simulator=simulator,
                kind=kind.name,
                value=result.value,
                reason=join_reasons(result.reason, aligned.coverage_note(), note),
                n_tokens=aligned.n_tokens,
                n_windows=len(aligned.true),
                ci_low=low,
                ci_high=high,
            )
        )
    return scores


def validation_score(unit: UnitExamples, simulations: Sequence[Simulation]) -> float | None:
    """Pooled Pearson r on the VALIDATE windows: ranks sampled explanations for best-of-n.

    Failed or absent simulations are left out; None when the correlation is undefined.
    """
    aligned = align(unit.in_splits(Split.VALIDATE), index_by_window(simulations))
    return pearson_pooled(aligned.true, aligned.pred).value
