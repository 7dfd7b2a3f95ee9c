"""Adaptive scoring (``budget.ci_width``): held-out windows simulated in steps, each pair
stopping once its headline interval is narrower than the width; the simulations it makes are
those of a full simulation, and the scores say how many windows they rest on."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import planted_unit  # noqa: E402

from neuroscribe.config import load_config  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.records import Explanation, Split  # noqa: E402
from neuroscribe.registry import HEADLINE_SCORE  # noqa: E402
from neuroscribe.score import score_units  # noqa: E402
from neuroscribe.simulate import simulate_units  # noqa: E402
from neuroscribe.simulate.adaptive import steps  # noqa: E402


def _setup(**budget):
    unit, windows = planted_unit(n_validate=6, n_random=6)
    explanations = [
        Explanation(explanation_id=f"e{i}", unit_key=unit.unit.key, explainer="baseline/ngram",
                    text=text)
        for i, text in enumerate(['the word "zebra"', 'the word "quick"'])
    ]
    cfg = load_config(None, {
        "simulate.simulators": ["baseline/lexical"], "score.fuzz": False,
        "budget": budget,
    })
    return unit, windows, explanations, cfg


def _simulate(unit, windows, explanations, cfg):
    sims = simulate_units(explanations, [unit], windows, cfg, Ledger())
    scores = score_units(explanations, [unit], sims, cfg)
    return sims, {s.explanation_id: s for s in scores if s.kind == HEADLINE_SCORE}


def test_steps_cover_every_held_out_window_once_calibration_first():
    unit, _, _, _ = _setup()
    plan = steps(unit, 2, seed=0)
    assert len(plan) == 3
    ids = [w.window_id for step in plan for w in step]
    held_out = unit.in_splits(Split.CALIBRATE, Split.SCORE_TOP, Split.SCORE_RANDOM)
    assert sorted(ids) == sorted(w.window_id for w in held_out)
    for step in plan:
        assert [w.split for w in step].count(Split.SCORE_TOP) == 2
        assert [w.split for w in step].count(Split.SCORE_RANDOM) == 2
    assert steps(unit, 2, seed=0) == plan  # deterministic
    assert steps(unit, 2, seed=1) != plan  # the order is drawn from the seed
    assert len(steps(unit, 4, seed=0)) == 2


def test_a_wide_width_stops_after_the_first_step_a_narrow_one_uses_every_window():
    unit, windows, explanations, full_cfg = _setup()
    full, full_scores = _simulate(unit, windows, explanations, full_cfg)
    assert {s.n_windows for s in full_scores.values()} == {12}

    # no interval of a correlation is wider than 2
    _, _, _, wide = _setup(ci_width=2.5, ci_min_windows=1)
    first, scores = _simulate(unit, windows, explanations, wide)
    assert len(first) == 2 * 4 and {s.n_windows for s in scores.values()} == {4}
    assert all("8 not simulated" in (s.reason or "") for s in scores.values())
    by_id = {s.simulation_id: s for s in full}
    assert all(by_id[s.simulation_id] == s for s in first)  # the same rows, fewer

    _, _, _, narrow = _setup(ci_width=1e-12)
    every, scores = _simulate(unit, windows, explanations, narrow)
    assert sorted(s.simulation_id for s in every) == sorted(by_id)
    assert {e: (s.value, s.ci_low, s.ci_high) for e, s in scores.items()} == {
        e: (s.value, s.ci_low, s.ci_high) for e, s in full_scores.items()
    }


def test_pairs_stop_on_their_own_interval():
    unit, windows, explanations, _ = _setup()
    _, _, _, cfg = _setup(ci_width=0.2, ci_min_windows=1)
    sims, scores = _simulate(unit, windows, explanations, cfg)
    used = {e: s.n_windows for e, s in scores.items()}
    for e, s in scores.items():  # stopped narrow, or ran out of windows
        assert (s.ci_high - s.ci_low < 0.2) or used[e] == 12, (e, s)
    counts = {e.explanation_id: sum(s.explanation_id == e.explanation_id for s in sims)
              for e in explanations}
    assert counts == used
    assert len(set(used.values())) > 1  # the right explanation stops before the wrong one
    assert used["e0"] < used["e1"]


def test_no_pair_stops_before_the_minimum_of_held_out_windows():
    unit, windows, explanations, _ = _setup()
    for minimum, expected in ((5, 8), (8, 8), (9, 12), (None, 12)):  # None: the default, 10
        budget = {"ci_width": 2.5} | ({} if minimum is None else {"ci_min_windows": minimum})
        _, _, _, cfg = _setup(**budget)
        sims, scores = _simulate(unit, windows, explanations, cfg)
        assert {s.n_windows for s in scores.values()} == {expected}, minimum
        assert len(sims) == 2 * expected
