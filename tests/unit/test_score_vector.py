"""The vectorised scorer (``score.batched.score_pairs``) against the scalar one
(``score_explanation``), pair by pair, on many random pairs with the awkward cases mixed in:
binary predictions with ties, constant predictions, failed and missing simulations, units that
never fire or fire everywhere, a non-finite prediction, ragged windows, several layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscribe.config import ScoreConfig
from neuroscribe.records import Simulation, Split, UnitExamples, UnitId, UnitStats, UnitWindow
from neuroscribe.score import score_explanation
from neuroscribe.score.batched import score_pairs
from neuroscribe.score.vector import counts_matrix, interval

SPLITS = {Split.CALIBRATE: 3, Split.SCORE_TOP: 4, Split.SCORE_RANDOM: 4, Split.SCORE_OOD: 2}


def _unit(rng: np.random.Generator, index: int, case: str, lengths: int) -> UnitExamples:
    windows = []
    for split, n in SPLITS.items():
        if split == Split.SCORE_OOD and index % 3:
            continue
        for i in range(n):
            size = lengths if case != "ragged" else lengths + i
            acts = rng.normal(size=size) * (2.0 if split == Split.SCORE_TOP else 0.5)
            if case == "constant_true":
                acts = np.full(size, 0.25)
            windows.append(UnitWindow(window_id=f"u{index}-{split.value}-{i}", split=split,
                                      rank=i, activations=tuple(float(a) for a in acts)))
    peak = max(max(w.activations) for w in windows)
    stats_max = {"dead": -1.0, "everywhere": 1e-9}.get(case, peak)
    return UnitExamples(
        unit=UnitId(subject_id="toy@0", site="layers.0.mlp", index=index),
        stats=UnitStats(n_tokens=100, max=stats_max, mean=0.0, firing_rate=0.1, quantiles=(),
                        dead=False),
        windows=tuple(windows),
    )


def _simulations(rng: np.random.Generator, unit: UnitExamples, eid: str,
                 case: str) -> list[Simulation]:
    out = []
    for j, w in enumerate(unit.windows):
        true = np.asarray(w.activations)
        if case in ("binary", "everywhere", "dead"):
            pred = np.where(rng.random(true.size) < 0.3, 10.0, 0.0)
        elif case == "constant_pred":
            pred = np.full(true.size, 3.0)
        else:
            pred = np.round(np.clip(true * 2 + rng.normal(size=true.size) + 3, 0, 10), 1)
        if case == "nonfinite" and w.split == Split.SCORE_TOP and j % 2:
            pred[0] = math.inf
        status = "ok"
        if case == "failures" and j % 4 == 1:
            status = "failed"
        if case == "failures" and j % 5 == 2:
            continue  # never simulated
        out.append(Simulation(
            simulation_id=f"{eid}-{w.window_id}", explanation_id=eid, simulator="sim/x",
            window_id=w.window_id, status=status,  # type: ignore[arg-type]
            predictions=tuple(float(p) for p in pred) if status == "ok" else (),
            failure=None if status == "ok" else "unparseable",
        ))
    return out


CASES = ["plain", "binary", "constant_pred", "constant_true", "failures", "dead", "everywhere",
         "nonfinite", "ragged"]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("bootstrap", [0, 1, 40])
def test_vectorised_scores_equal_the_scalar_ones(bootstrap: int) -> None:
    rng = np.random.default_rng(5)
    cfg = ScoreConfig(bootstrap=bootstrap, ci_level=0.9)
    pairs = []
    for index in range(45):
        case = CASES[index % len(CASES)]
        unit = _unit(rng, index, case, lengths=6 if index % 2 else 8)
        eid = f"e{index}"
        pairs.append((eid, "sim/x", unit, _simulations(rng, unit, eid, case)))
    got = score_pairs(pairs, cfg, seed=3)
    want = [s for eid, sim, unit, sims in pairs
            for s in score_explanation(eid, sim, unit, sims, cfg, seed=3)]
    assert [(s.explanation_id, s.kind) for s in got] == [(s.explanation_id, s.kind) for s in want]
    defined = 0
    for g, w in zip(got, want, strict=True):
        where = (g.explanation_id, g.kind)
        assert g.reason == w.reason, where
        assert (g.n_tokens, g.n_windows) == (w.n_tokens, w.n_windows), where
        assert _same(g.value, w.value), (where, g.value, w.value)
        assert _same(g.ci_low, w.ci_low) and _same(g.ci_high, w.ci_high), (
            where, (g.ci_low, g.ci_high), (w.ci_low, w.ci_high))
        defined += g.ci_low is not None
    assert defined > (100 if bootstrap > 1 else -1)  # the intervals were really compared


def test_counts_follow_the_scalar_bootstrap_draws() -> None:
    c = counts_matrix(4, 3, seed=9)
    picks = np.random.default_rng(9).integers(0, 4, size=(3, 4))
    assert c[0].tolist() == [1, 1, 1, 1]
    for row, drawn in zip(c[1:], picks, strict=True):
        assert row.tolist() == np.bincount(drawn, minlength=4).tolist()


def test_interval_is_numpys_quantile_of_the_defined_values() -> None:
    values = np.array([[3.0, 1.0, np.nan, 2.0, 7.0], [1.0, np.nan, np.nan, np.nan, 2.0]])
    defined = np.isfinite(values)
    low, high = interval(values, defined, level=0.8)
    assert low[0] == pytest.approx(np.quantile([3.0, 1.0, 2.0, 7.0], 0.1))
    assert high[0] == pytest.approx(np.quantile([3.0, 1.0, 2.0, 7.0], 0.9))
    assert np.isnan(low[1]) and np.isnan(high[1])  # 2 of 5 defined: under half


def test_vectorised_fuzz_scores_equal_the_scalar_metric_and_bootstrap() -> None:
    from neuroscribe.score.detection import auroc, balanced_accuracy
    from neuroscribe.score.fuzz import FuzzPair, fuzz_scores_many
    from neuroscribe.score.metrics import bootstrap_ci, pool
    from neuroscribe.simulate.fuzz import FuzzItem, FuzzVerdict

    def bacc(t, p):
        a, b = pool(t, p)
        return balanced_accuracy(a > 0.5, b > 0.5)

    def area(t, p):
        a, b = pool(t, p)
        return auroc(a > 0.5, b)

    rng = np.random.default_rng(2)
    cfg = ScoreConfig(bootstrap=30, ci_level=0.9)
    pairs = []
    for k in range(30):
        verdicts = []
        for w in range(2 + k % 5):
            for correct in (True, False):
                item = FuzzItem(window_id=f"w{w}", split=Split.SCORE_TOP, marked=(0,),
                                correct=correct, n_tokens=8)
                confidence = float(np.round(rng.random() + (0.4 if correct else 0.0), 1))
                verdicts.append(FuzzVerdict(explanation_id=f"e{k}", simulator="s", item=item,
                                            answer=bool(rng.random() < 0.6) == correct,
                                            confidence=confidence))
        pairs.append(FuzzPair(f"e{k}", "s", verdicts))
    got = fuzz_scores_many(pairs, cfg, seed=4)
    compared = 0
    for pair, (b, a) in zip(pairs, zip(got[::2], got[1::2], strict=True), strict=True):
        for score, metric, field in ((b, bacc, "answer"), (a, area, "confidence")):
            by_window: dict[str, tuple[list[float], list[float]]] = {}
            for v in pair.verdicts:
                t, p = by_window.setdefault(v.item.window_id, ([], []))
                t.append(1.0 if v.item.correct else 0.0)
                p.append(float(getattr(v, field)))
            true = [t for t, _ in by_window.values()]
            pred = [p for _, p in by_window.values()]
            assert _same(score.value, metric(true, pred).value), score
            low, high = bootstrap_ci(true, pred, metric, 30, 0.9, 4)
            assert _same(score.ci_low, low) and _same(score.ci_high, high), score
            compared += low is not None
    assert compared > 30


def test_a_pair_scores_the_same_alone_as_in_a_stack() -> None:
    """How the units were chunked (the Dask engine's chunks, the local engine's one call) must
    not change a score: BLAS multiplies a one-row stack with another kernel, so a lone pair is
    stacked twice."""
    rng = np.random.default_rng(11)
    cfg = ScoreConfig(bootstrap=40, ci_level=0.9)
    pairs = []
    for index in range(6):
        unit = _unit(rng, index, "plain", lengths=7)
        pairs.append((f"e{index}", "sim/x", unit, _simulations(rng, unit, f"e{index}", "plain")))
    together = score_pairs(pairs, cfg, seed=3)
    alone = [s for pair in pairs for s in score_pairs([pair], cfg, seed=3)]
    assert sum(s.ci_low is not None for s in alone) > 10
    assert alone == together  # exactly, to the last bit
