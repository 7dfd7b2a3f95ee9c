"""explainer_text_similarity (with a scripted embedder), agree_overall and the updated clarity."""

from __future__ import annotations

from collections.abc import Sequence

import krippendorff
import numpy as np
import pytest

from neuroscribe.agree import (
    AGREEMENT_KINDS,
    agree_explanation_texts,
    agree_overall,
    agree_unit,
    clarity,
)
from neuroscribe.records import Agreement, Explanation, Simulation

UNIT = "toy@0/layers.0.mlp/0"

VECTORS = {
    "legal text": [1.0, 0.0, 0.0],
    "law and courts": [3.0, 4.0, 0.0],  # not unit length: the function normalises
    "cats": [0.0, 0.0, 2.0],
}


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    return np.array([VECTORS[t] for t in texts])


def test_text_similarity_is_cosine_per_pair() -> None:
    texts = {"b": "law and courts", "a": "legal text", "c": "cats", "d": "legal text"}
    rows = {r.annotators: r for r in agree_explanation_texts(UNIT, texts, embed=fake_embed)}
    assert set(rows) == {
        ("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")
    }  # fmt: skip
    assert rows[("a", "b")].value == pytest.approx(0.6)  # (1, 0, 0)·(3, 4, 0)/5
    assert rows[("a", "c")].value == pytest.approx(0.0)
    assert rows[("a", "d")].value == pytest.approx(1.0)  # identical texts
    assert all(r.kind == "explainer_text_similarity" and r.n == 2 for r in rows.values())
    assert "explainer_text_similarity" in AGREEMENT_KINDS


def test_text_similarity_missing_text_is_null_and_skips_the_model() -> None:
    def no_model(texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("nothing to compare: the embedder must not be called")

    (row,) = agree_explanation_texts(UNIT, {"a": "legal text", "b": "  "}, embed=no_model)
    assert (row.value, row.reason, row.n) == (None, "no explanation text from b", 1)
    assert agree_explanation_texts(UNIT, {"a": "legal text"}, embed=no_model) == []


def test_clarity_includes_text_similarity() -> None:
    def row(kind: str, value: float | None) -> Agreement:
        return Agreement(unit_key=UNIT, kind=kind, annotators=("x", "y"), value=value, n=3)

    rows = [
        row("alpha_simulators", 0.5),
        row("explainer_sim_corr_adjusted", -0.2),  # clipped to 0
        row("explainer_text_similarity", 0.9),
        row("explainer_text_similarity", 0.5),  # averaged with the other first: 0.7
        row("explainer_text_similarity", None),  # undefined rows are left out
    ]
    assert clarity(rows) == pytest.approx((0.5 + 0.0 + 0.7) / 3)
    assert clarity([row("explainer_text_similarity", 0.4)]) == pytest.approx(0.4)


# --- agree_overall -----------------------------------------------------------------------------


def sim(
    simulator: str, explanation: str, window: str, predictions: list[float] | None
) -> Simulation:
    return Simulation(
        simulation_id=f"{simulator}-{explanation}-{window}",
        explanation_id=explanation,
        simulator=simulator,
        window_id=window,
        status="ok" if predictions is not None else "failed",
        predictions=tuple(predictions or ()),
    )


def expl(explanation_id: str, unit: str, explainer: str = "local/x", **kw: object) -> Explanation:
    return Explanation(
        explanation_id=explanation_id, unit_key=unit, explainer=explainer, text="t", **kw
    )


EXPLANATIONS = [
    expl("E1", "u1"),
    expl("E2", "u2"),
    expl("C1", "u1", explainer="control/shuffled"),
    expl("X1", "u1", selected=False),
]
SIMULATIONS = [
    sim("A", "E1", "w1", [0, 10]),
    sim("B", "E1", "w1", [0, 5]),
    sim("A", "E2", "w2", [5]),
    sim("B", "E2", "w2", [5]),
    sim("A", "E2", "w3", [10]),
    sim("B", "E2", "w3", None),  # failed: a missing value
    sim("A", "C1", "w1", [10, 10]),  # the shuffled control is left out
    sim("B", "C1", "w1", [0, 0]),
    sim("A", "X1", "w1", [10, 0]),  # not selected: left out
    sim("B", "X1", "w1", [0, 10]),
]


def test_agree_overall_by_hand_and_against_the_package() -> None:
    (row,) = agree_overall(EXPLANATIONS, SIMULATIONS)
    # Items (rescaled to 0-1): {0, 0}, {1, .5}, {.5, .5}; the w3 token has one value.
    # The same items as in test_agree_unit_by_hand: alpha = 12/17.
    assert row.value == pytest.approx(12 / 17)
    assert (row.unit_key, row.kind, row.annotators, row.n) == (
        None,
        "alpha_simulators_all_units",
        ("A", "B"),
        3,
    )
    oracle = krippendorff.alpha(
        reliability_data=[[0, 1, 0.5, 1], [0, 0.5, 0.5, np.nan]], level_of_measurement="interval"
    )
    assert row.value == pytest.approx(oracle)


def test_agree_overall_pools_units_unlike_the_per_unit_alpha() -> None:
    per_unit = [
        agree_unit(u, {s: [x for x in SIMULATIONS if x.simulator == s and x.explanation_id == e]
                       for s in "AB"}, windows=["w1", "w2", "w3"])[0]
        for u, e in (("u1", "E1"), ("u2", "E2"))
    ]  # fmt: skip
    # u2 alone has one pairable item with no variation: undefined; pooled, it is defined.
    assert per_unit[1].value is None and per_unit[1].reason == "no variation"
    assert agree_overall(EXPLANATIONS, SIMULATIONS)[0].value is not None


def test_agree_overall_pairs_and_all_with_three_simulators() -> None:
    sims = SIMULATIONS + [sim("C", "E1", "w1", [0, 10]), sim("C", "E2", "w2", [0])]
    rows = agree_overall(EXPLANATIONS, sims)
    assert [r.annotators for r in rows] == [("A", "B"), ("A", "C"), ("B", "C"), ("A", "B", "C")]
    a_c = rows[1]
    oracle = krippendorff.alpha(
        reliability_data=[[0, 1, 0.5, 1], [0, 1, 0, np.nan]], level_of_measurement="interval"
    )
    assert a_c.value == pytest.approx(oracle)
    everyone = rows[3]
    oracle = krippendorff.alpha(
        reliability_data=[[0, 1, 0.5, 1], [0, 0.5, 0.5, np.nan], [0, 1, 0, np.nan]],
        level_of_measurement="interval",
    )
    assert everyone.value == pytest.approx(oracle)


def test_agree_overall_needs_two_simulators() -> None:
    assert agree_overall(EXPLANATIONS, [s for s in SIMULATIONS if s.simulator == "A"]) == []
