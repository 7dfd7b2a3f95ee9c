"""Explainer agreement corrected by the shuffled control: hand-worked values, and a simulator
that ignores the explanation adds (nearly) nothing to clarity."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.agree import agree_explainers, agree_with_control, clarity, kappa
from neuroscribe.records import Agreement, Simulation

UNIT = "toy@0/layers.0.mlp/0"


def sims(explanation: str, simulator: str, windows: dict[str, list[float]]) -> list[Simulation]:
    return [
        Simulation(
            simulation_id=f"{explanation}-{simulator}-{w}",
            explanation_id=explanation,
            simulator=simulator,
            window_id=w,
            predictions=tuple(p),
        )
        for w, p in windows.items()
    ]


def rows_of(rows: list[Agreement], kind: str) -> dict[tuple[str, ...], Agreement]:
    return {r.annotators: r for r in rows if r.kind == kind}


def test_kappa_by_hand() -> None:
    assert kappa(0.934, 0.93) == pytest.approx(0.004 / 0.07)  # ≈ 0.057: barely above chance
    assert kappa(0.8, 0.5) == pytest.approx(0.6)  # (0.8 - 0.5) / 0.5
    assert kappa(0.5, -0.2) == pytest.approx(0.5)  # negative chance counts as 0
    assert kappa(0.2, 0.5) == 0.0  # below chance counts as none
    assert kappa(1.0, 1.0) == 0.0  # a simulator that cannot tell explanations apart


def test_a_listening_simulator_keeps_its_agreement() -> None:
    # A and B both predict the trigger at position 1; the control predicts position 0.
    # x = [0, 1, 0, 0], y = [1, 0, 0, 0]: centred dot -0.25, |x|² = |y|² = 0.75 -> r = -1/3,
    # so c = max(0, -1/3) = 0 and kappa = r(A, B) = 1.
    per = {"a": sims("A", "S", {"w": [0, 10, 0, 0]}), "b": sims("B", "S", {"w": [0, 10, 0, 0]})}
    rows = agree_with_control(UNIT, per, sims("C", "S", {"w": [10, 0, 0, 0]}))
    control = rows_of(rows, "control_sim_corr")
    assert control[("a", "S")].value == pytest.approx(-1 / 3)
    assert control[("a", "S")].n == 4
    (adjusted,) = rows_of(rows, "explainer_sim_corr_adjusted").values()
    assert (adjusted.annotators, adjusted.value, adjusted.n) == (("a", "b"), pytest.approx(1.0), 4)


def test_adjusted_against_numpy_with_two_simulators() -> None:
    rng = np.random.default_rng(0)
    preds = {k: {s: rng.uniform(0, 10, size=12) for s in ("S1", "S2")} for k in "ABC"}
    preds["B"]["S1"] = preds["A"]["S1"] + rng.normal(0, 2, size=12)  # S1: A, B agree
    preds["C"]["S1"] = preds["A"]["S1"] * 0.5 + rng.uniform(0, 10, size=12)  # and half chance

    def split(k: str, s: str) -> list[Simulation]:
        p = preds[k][s]
        return sims(k, s, {"w1": list(p[:5]), "w2": list(p[5:])})

    per = {"a": split("A", "S1") + split("A", "S2"), "b": split("B", "S1") + split("B", "S2")}
    rows = agree_with_control(UNIT, per, split("C", "S1") + split("C", "S2"))

    def r(x: str, y: str, s: str) -> float:
        return float(np.corrcoef(preds[x][s], preds[y][s])[0, 1])

    expected = np.mean(
        [
            min(1, max(0, (r("A", "B", s) - max(0, c)) / (1 - max(0, c))))
            for s in ("S1", "S2")
            for c in [(r("A", "C", s) + r("B", "C", s)) / 2]
        ]
    )
    (adjusted,) = rows_of(rows, "explainer_sim_corr_adjusted").values()
    assert adjusted.value == pytest.approx(expected)
    assert adjusted.n == 24


def test_a_deaf_simulator_gives_clarity_near_zero_for_the_explainer_term() -> None:
    # The simulator predicts from the text alone: the same profile whatever the explanation,
    # up to a little noise. Raw agreement between explainers is high, and so is the control's.
    rng = np.random.default_rng(1)
    profile = rng.uniform(0, 10, size=64)

    def deaf(e: str) -> list[Simulation]:
        p = profile + rng.normal(0, 0.3, size=64)
        return sims(e, "deaf", {"w1": list(p[:32]), "w2": list(p[32:])})

    per = {"a": deaf("A"), "b": deaf("B")}
    raw = agree_explainers(UNIT, per)
    adjusted = agree_with_control(UNIT, per, deaf("C"))
    assert raw[0].value > 0.98
    assert all(r.value > 0.98 for r in rows_of(adjusted, "control_sim_corr").values())
    (term,) = rows_of(adjusted, "explainer_sim_corr_adjusted").values()
    assert term.value < 0.05
    assert clarity(raw + adjusted) == pytest.approx(term.value)  # the raw value is not used
    # Exactly deaf (identical predictions): chance correlation 1, term exactly 0.
    exact = sims("A", "deaf", {"w": [1, 2, 3]})
    rows = agree_with_control(
        UNIT,
        {"a": exact, "b": sims("B", "deaf", {"w": [1, 2, 3]})},
        sims("C", "deaf", {"w": [1, 2, 3]}),
    )
    assert rows_of(rows, "explainer_sim_corr_adjusted")[("a", "b")].value == 0.0


def test_without_a_control_the_term_is_undefined() -> None:
    per = {"a": sims("A", "S", {"w": [0, 10, 0]}), "b": sims("B", "S", {"w": [0, 10, 0]})}
    (row,) = agree_with_control(UNIT, per, [])
    assert row.value is None
    assert row.reason == "S: no defined correlation with the shuffled control"
    assert clarity([row]) is None  # left out, not counted as 0
    constant = sims("C", "S", {"w": [5, 5, 5]})
    rows = agree_with_control(UNIT, per, constant)
    assert rows_of(rows, "control_sim_corr")[("a", "S")].reason == (
        "constant predictions from S for the control"
    )
