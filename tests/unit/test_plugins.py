"""Plug-ins are added by registering them, nowhere else: a toy simulator and a toy score kind,
defined in this file alone, run through the simulate, fuzz and score stages. And every score kind
the registry knows is documented in the warehouse README."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from annotator_fixtures import planted_unit

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.records import Explanation, Simulation, Split, Window
from neuroscribe.registry import SCORE_KINDS, SIMULATORS
from neuroscribe.score import FUZZ_KINDS, MetricValue, Prepared, ScoreKind, score_units
from neuroscribe.score.score import definitions_markdown
from neuroscribe.simulate import SimulatorPlugin, fuzz_units, simulate_units
from neuroscribe.simulate.base import ok_simulation

TOY_SIMULATOR = "toy/letter-z"
TOY_KIND = "toy_mae_top"


class LetterSimulator:
    """Predicts 10 on every token containing the letter z, 0 elsewhere."""

    name = TOY_SIMULATOR
    max_concurrency = 1

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return [
            ok_simulation(
                explanation, self.name, w, None, [10.0 if "z" in t else 0.0 for t in w.tokens]
            )
            for w in windows
        ]

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        return self.simulate(explanation, windows)


def mean_absolute_error(true: Sequence[Sequence[float]], pred: Sequence[Sequence[float]]):
    t = np.concatenate([np.asarray(w, dtype=float) for w in true]) if true else np.zeros(0)
    p = np.concatenate([np.asarray(w, dtype=float) for w in pred]) if pred else np.zeros(0)
    if not len(t):
        return MetricValue(None, "no tokens")
    return MetricValue(float(np.mean(np.abs(t - p))), None)


def test_a_toy_simulator_and_score_kind_run_through_the_stages() -> None:
    SIMULATORS.register(
        TOY_SIMULATOR,
        SimulatorPlugin(
            make=lambda name, cfg, ledger, annotator: LetterSimulator(),
            no_fuzz="toy simulator: no fuzz judge",
        ),
    )
    SCORE_KINDS.register(
        TOY_KIND,
        ScoreKind(
            TOY_KIND,
            "Mean absolute error of the predictions on the held-out top windows.",
            (Split.SCORE_TOP,),
            lambda ctx: Prepared(mean_absolute_error),
        ),
    )
    try:
        unit, windows = planted_unit(n_validate=4, length=16)
        e = Explanation(
            explanation_id="e1", unit_key=unit.unit.key, explainer="x/y", text="the letter z"
        )
        cfg = RunConfig.model_validate(
            {"simulate": {"simulators": [TOY_SIMULATOR]}, "score": {"bootstrap": 20}}
        )
        sims = simulate_units([e], [unit], windows, cfg, Ledger())
        simulated = {s.window_id for s in sims}
        assert simulated == {w.window_id for w in unit.windows if w.split != Split.EXPLAIN
                             and w.split != Split.VALIDATE}
        scores = {s.kind: s for s in score_units([e], [unit], sims, cfg)}
        assert set(scores) == {*SCORE_KINDS} - {"corr_ood"}

        # By hand: |true - prediction| over every token of the score_top windows.
        top = unit.in_splits(Split.SCORE_TOP)
        errors = [
            abs(a - (10.0 if "z" in t else 0.0))
            for w in top
            for a, t in zip(w.activations, windows[w.window_id].tokens, strict=True)
        ]
        toy = scores[TOY_KIND]
        assert toy.value is not None and abs(toy.value - sum(errors) / len(errors)) < 1e-12
        assert toy.n_windows == len(top) and toy.n_tokens == len(errors)
        assert toy.ci_low is not None and toy.ci_low <= toy.value <= toy.ci_high

        # No fuzz judge: every fuzz kind is stored NULL with the plug-in's reason.
        fuzz = {s.kind: s for s in fuzz_units([e], [unit], windows, cfg, Ledger())}
        assert set(fuzz) == set(FUZZ_KINDS)
        assert all(s.value is None and "no fuzz judge" in (s.reason or "") for s in fuzz.values())
    finally:
        SIMULATORS.unregister(TOY_SIMULATOR)
        SCORE_KINDS.unregister(TOY_KIND)
    assert TOY_SIMULATOR not in SIMULATORS and TOY_KIND not in SCORE_KINDS


def test_the_warehouse_readme_defines_every_score_kind_as_the_code_does() -> None:
    """One source: the definitions in the code (registry and fuzz kinds); the README's table is
    their rendering. After adding or changing a kind, paste ``definitions_markdown()`` there."""
    readme = (Path(__file__).parents[2] / "warehouse" / "README.md").read_text()
    assert definitions_markdown() in readme
    for kind in [*SCORE_KINDS, *FUZZ_KINDS]:
        assert f"| `{kind}` |" in definitions_markdown()


def test_a_plugin_without_batch_members_gets_the_one_job_defaults() -> None:
    """The stages call ``simulate_batch`` / ``judge_many`` only; a plug-in that implements
    ``simulate`` (or ``judge``) alone is given them, one job at a time, and the built-in
    baselines declare their own batches across units."""
    from neuroscribe.config import SimulateConfig
    from neuroscribe.simulate import make_fuzz_judge, make_simulator
    from neuroscribe.simulate.base import BATCH_JOBS
    from neuroscribe.simulate.fuzz import FuzzVerdict, build_fuzz_items, verdict

    class EveryItemYes:
        name = TOY_SIMULATOR
        unavailable: dict[str, str] = {}

        def judge(self, explanation, items, windows) -> list[FuzzVerdict]:
            return [verdict(explanation, self.name, item, answer=True) for item in items]

    SIMULATORS.register(
        TOY_SIMULATOR,
        SimulatorPlugin(
            make=lambda name, cfg, ledger, annotator: LetterSimulator(),
            fuzz_judge=lambda name, cfg, ledger, annotator: EveryItemYes(),
        ),
    )
    try:
        unit, windows = planted_unit(n_validate=4, length=16)
        held_out = [windows[w.window_id] for w in unit.in_splits(Split.SCORE_TOP)]
        es = [
            Explanation(explanation_id=f"e{i}", unit_key=unit.unit.key, explainer="x/y", text=t)
            for i, t in enumerate(("the letter z", "zebras"))
        ]
        sim = make_simulator(TOY_SIMULATOR, SimulateConfig())
        assert sim.batch_jobs == 2 * LetterSimulator.max_concurrency
        batched = sim.simulate_batch([(e, held_out) for e in es])
        assert batched == [LetterSimulator().simulate(e, held_out) for e in es]

        judge = make_fuzz_judge(TOY_SIMULATOR, SimulateConfig())
        items = build_fuzz_items(unit, 2, seed=0)
        assert judge.batch_jobs == 1 and items
        verdicts = judge.judge_many([(e, items) for e in es], windows)
        assert [[v.item for v in vs] for vs in verdicts] == [items, items]
        assert all(v.answer for vs in verdicts for v in vs)
    finally:
        SIMULATORS.unregister(TOY_SIMULATOR)
    assert make_simulator("baseline/lexical", SimulateConfig()).batch_jobs == BATCH_JOBS
    assert make_fuzz_judge("baseline/lexical", SimulateConfig()).batch_jobs == BATCH_JOBS
