"""agree_unit, agree_explainers, agree_across_units and clarity on hand-built records."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from neuroscribe.agree import (
    AGREEMENT_KINDS,
    agree_across_units,
    agree_explainers,
    agree_unit,
    clarity,
)
from neuroscribe.records import Agreement, Explanation, Score, Simulation

UNIT = "toy@0/layers.0.mlp/0"


def sim(
    simulator: str, window: str, predictions: list[float] | None, explanation: str = "E"
) -> Simulation:
    """An ok simulation, or a failed one when ``predictions`` is None."""
    return Simulation(
        simulation_id=f"{explanation}-{simulator}-{window}",
        explanation_id=explanation,
        simulator=simulator,
        window_id=window,
        status="ok" if predictions is not None else "failed",
        predictions=tuple(predictions or ()),
        failure=None if predictions is not None else "unparseable",
    )


def by_kind(rows: list[Agreement]) -> dict[str, list[Agreement]]:
    out: dict[str, list[Agreement]] = {}
    for row in rows:
        out.setdefault(row.kind, []).append(row)
    return out


# --- agree_unit --------------------------------------------------------------------------------


def test_agree_unit_by_hand() -> None:
    sims = {
        "A": [sim("A", "w1", [0, 10, 5]), sim("A", "w2", [10, 0]), sim("A", "w3", [1, 2])],
        "B": [sim("B", "w1", [0, 5, 5]), sim("B", "w2", None), sim("B", "w3", [9, 9])],
    }
    rows = by_kind(agree_unit(UNIT, sims, windows=["w1", "w2"]))  # w3 is not asked for
    # Rescaled to 0-1: A = [0, 1, .5, 1, 0], B = [0, .5, .5, -, -]; the w2 tokens have one
    # rating and drop out. Items {0, 0}, {1, .5}, {.5, .5}: n = 6, SS_item = 0, 0.125, 0.
    # D_o = (1/6)·(2·2·0.125) = 1/12. Pooled [0, 1, .5, 0, .5, .5]: Σv² = 1.75, mean 5/12,
    # SS = 1.75 - 6·(5/12)² = 17/24, D_e = 2·(17/24)/5 = 17/60. alpha = 1 - 5/17 = 12/17.
    (alpha,) = rows["alpha_simulators"]
    assert alpha.value == pytest.approx(12 / 17)
    assert (alpha.annotators, alpha.n, alpha.unit_key) == (("A", "B"), 3, UNIT)
    oracle = krippendorff.alpha(
        reliability_data=[[0, 1, 0.5, 1, 0], [0, 0.5, 0.5, np.nan, np.nan]],
        level_of_measurement="interval",
    )
    assert alpha.value == pytest.approx(oracle)
    # Pearson on the shared tokens: [0, 1, .5] vs [0, .5, .5]: da = [-.5, .5, 0],
    # db = [-1/3, 1/6, 1/6]: Σ = 1/4, Σda² = 1/2, Σdb² = 1/6 → r = (1/4)/√(1/12) = √3/2.
    (pair,) = rows["pearson_simulators"]
    assert pair.value == pytest.approx(np.sqrt(3) / 2)
    assert (pair.annotators, pair.n) == (("A", "B"), 3)
    (mean,) = rows["mean_pearson_simulators"]
    assert mean.value == pytest.approx(np.sqrt(3) / 2)
    assert set(rows) <= set(AGREEMENT_KINDS)


def test_agree_unit_three_simulators_matches_package_and_pools_explanations() -> None:
    rng = np.random.default_rng(0)
    names = ["A", "B", "C"]
    sims: dict[str, list[Simulation]] = {n: [] for n in names}
    ratings = []
    for explanation in ("E1", "E2"):
        for w in ("w1", "w2"):
            truth = rng.uniform(0, 10, size=4)
            block = []
            for n in names:
                p = np.clip(truth + rng.normal(0, 2, size=4), 0, 10)
                if n == "C" and (explanation, w) == ("E2", "w2"):
                    sims[n].append(sim(n, w, None, explanation))
                    block.append(np.full(4, np.nan))
                else:
                    sims[n].append(sim(n, w, p.tolist(), explanation))
                    block.append(p)
            ratings.append(np.array(block))
    rows = by_kind(agree_unit(UNIT, sims, windows=["w1", "w2"]))
    expected = krippendorff.alpha(
        reliability_data=np.concatenate(ratings, axis=1) / 10, level_of_measurement="interval"
    )
    (alpha,) = rows["alpha_simulators"]
    assert alpha.value is not None and abs(alpha.value - expected) < 1e-9
    assert alpha.n == 16
    assert [r.annotators for r in rows["pearson_simulators"]] == [
        ("A", "B"),
        ("A", "C"),
        ("B", "C"),
    ]
    assert [r.n for r in rows["pearson_simulators"]] == [16, 12, 12]
    pair_values = [r.value for r in rows["pearson_simulators"] if r.value is not None]
    assert len(pair_values) == 3
    assert rows["mean_pearson_simulators"][0].value == pytest.approx(np.mean(pair_values))


def test_agree_unit_undefined_and_degenerate_cases() -> None:
    assert agree_unit(UNIT, {"A": [sim("A", "w1", [1, 2])]}, ["w1"]) == []
    same = {n: [sim(n, "w1", [3, 3, 3])] for n in ("A", "B")}
    rows = by_kind(agree_unit(UNIT, same, ["w1"]))
    assert rows["alpha_simulators"][0].value is None
    assert rows["alpha_simulators"][0].reason == "no variation"
    assert rows["mean_pearson_simulators"][0].reason == "no defined pairwise correlation"
    assert rows["pearson_simulators"][0].reason == "constant predictions from A"
    half = {"A": [sim("A", "w1", [1, 2])], "B": [sim("B", "w1", [4, 4])]}
    assert by_kind(agree_unit(UNIT, half, ["w1"]))["pearson_simulators"][0].reason == (
        "constant predictions from B"
    )
    failed = {n: [sim(n, "w1", None)] for n in ("A", "B")}
    rows = by_kind(agree_unit(UNIT, failed, ["w1"]))
    assert rows["alpha_simulators"][0].reason == "no pairable values"
    assert rows["alpha_simulators"][0].n == 0
    with pytest.raises(ValueError, match="number of tokens"):
        agree_unit(UNIT, {"A": [sim("A", "w1", [1, 2])], "B": [sim("B", "w1", [1])]}, ["w1"])
    with pytest.raises(ValueError, match="not"):
        agree_unit(UNIT, {"A": [sim("B", "w1", [1])], "B": [sim("B", "w1", [1])]}, ["w1"])


# --- agree_explainers --------------------------------------------------------------------------


def test_agree_explainers_by_hand() -> None:
    sims = {
        "X": [sim("S1", "w1", [0, 10, 0], "EX"), sim("S2", "w1", [1, 2, 3], "EX")],
        "Y": [sim("S1", "w1", [0, 8, 1], "EY"), sim("S2", "w1", [3, 2, 1], "EY")],
        "Z": [sim("S1", "w1", None, "EZ")],
    }
    rows = agree_explainers(UNIT, sims)
    assert [r.annotators for r in rows] == [("X", "Y"), ("X", "Z"), ("Y", "Z")]
    # S1: [0, 10, 0] vs [0, 8, 1]: dx = [-10/3, 20/3, -10/3], dy = [-3, 5, -2];
    # Σdx·dy = 10 + 100/3 + 20/3 = 50, Σdx² = 200/3, Σdy² = 38 → r = 50/√(200/3·38).
    # S2: [1, 2, 3] vs [3, 2, 1] → r = -1. Row value: their mean; n = 3 + 3 tokens.
    r_s1 = 50 / np.sqrt(200 / 3 * 38)
    assert rows[0].value == pytest.approx((r_s1 - 1) / 2)
    assert (rows[0].kind, rows[0].n, rows[0].unit_key) == ("explainer_sim_corr", 6, UNIT)
    assert rows[1].value is None and rows[1].reason == "S1: no tokens"
    flat = {"X": [sim("S1", "w1", [0, 1], "EX")], "Y": [sim("S1", "w1", [2, 2], "EY")]}
    assert agree_explainers(UNIT, flat)[0].reason == "S1: constant predictions from Y"
    assert rows[1].n == 0


def test_agree_explainers_rejects_several_explanations_per_explainer() -> None:
    sims = {"X": [sim("S1", "w1", [0, 1], "EX1"), sim("S1", "w2", [0, 1], "EX2")]}
    with pytest.raises(ValueError, match="several explanations"):
        agree_explainers(UNIT, sims)


# --- agree_across_units ------------------------------------------------------------------------


def make_scores(
    explainer: str, simulator: str, values: list[float | None]
) -> tuple[list[Score], list[Explanation]]:
    scores, explanations = [], []
    for i, v in enumerate(values):
        eid = f"{explainer}-u{i}"
        explanations.append(
            Explanation(explanation_id=eid, unit_key=f"u{i}", explainer=explainer, text="x")
        )
        scores.append(
            Score(
                explanation_id=eid,
                simulator=simulator,
                kind="corr_top_random",
                value=v,
                reason=None if v is not None else "constant predictions",
                n_tokens=10,
                n_windows=2,
            )
        )
    return scores, explanations


def test_agree_across_units_by_hand() -> None:
    sx, ex = make_scores("X", "S", [0.1, 0.5, 0.3, 0.9, None])
    sy, ey = make_scores("Y", "S", [0.2, 0.4, 0.6, 0.8, 0.7])
    rows = agree_across_units(sx + sy, ex + ey)
    # Unit 4 has no defined X score and drops out. X ranks [1, 3, 2, 4], Y ranks [1, 2, 3, 4]:
    # d = [0, 1, -1, 0], Σd² = 2 → rho = 1 - 6·2/(4·(16-1)) = 0.8 (no ties).
    (row,) = rows
    assert row.value == pytest.approx(0.8)
    assert (row.kind, row.annotators, row.n, row.unit_key) == (
        "spearman_corr_top_random",
        ("X|S", "Y|S"),
        4,
        None,
    )
    # Fewer than min_units shared units; kinds with no scores give no rows.
    rows = agree_across_units(
        sx + sy, ex + ey, score_kinds=["corr_top_random", "corr_ood"], min_units=5
    )
    assert [(r.value, r.reason) for r in rows] == [(None, "fewer than 5 units scored by both")]
    # Scores of explanations not passed in are ignored.
    assert agree_across_units(sx + sy, ex) == []


def test_agree_across_units_rejects_duplicates() -> None:
    sx, ex = make_scores("X", "S", [0.1, 0.5, 0.3])
    with pytest.raises(ValueError, match="two corr_top_random scores"):
        agree_across_units(sx + sx, ex)


# --- clarity -----------------------------------------------------------------------------------


def agreement(kind: str, value: float | None, unit: str | None = UNIT) -> Agreement:
    return Agreement(unit_key=unit, kind=kind, annotators=("a", "b"), value=value, n=10)


def test_clarity_by_hand() -> None:
    rows = [
        agreement("alpha_simulators", 0.6),
        agreement("explainer_sim_corr_adjusted", 0.4),
        agreement("explainer_sim_corr_adjusted", -0.2),
        agreement("explainer_sim_corr_adjusted", None),
        agreement("mean_pearson_simulators", 0.99),  # not a component
        agreement("explainer_sim_corr", 0.95),  # raw: read through the control, not directly
    ]
    # alpha 0.6; explainer mean (0.4 - 0.2)/2 = 0.1 → clarity (0.6 + 0.1)/2 = 0.35.
    assert clarity(rows) == pytest.approx(0.35)
    # Negative alpha counts as 0; a lone component is the figure.
    assert clarity([agreement("alpha_simulators", -0.3)]) == 0.0
    assert clarity([agreement("explainer_sim_corr_adjusted", 0.7)]) == pytest.approx(0.7)
    assert clarity([agreement("explainer_sim_corr", 0.7)]) is None
    assert clarity([agreement("alpha_simulators", None)]) is None
    assert clarity([]) is None
    with pytest.raises(ValueError):
        clarity([agreement("alpha_simulators", 0.5), agreement("alpha_simulators", 0.5, "u2")])
