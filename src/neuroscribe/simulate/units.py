"""The simulate and fuzz stages over a run's units.

``simulate_units`` runs every simulator on every selected explanation over its unit's held-out
windows; ``fuzz_units`` has every simulator's fuzz judge judge marked held-out windows. Both skip
the (explanation id, simulator) pairs already done, so a resumed run only does what is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.progress import track_chunks
from neuroscribe.records import Explanation, Score, Simulation, Split, UnitExamples, Window
from neuroscribe.score.fuzz import FuzzPair, fuzz_scores_many
from neuroscribe.simulate.adaptive import Jobs, simulate_adaptive
from neuroscribe.simulate.base import Simulator, simulate_many
from neuroscribe.simulate.fuzz import build_fuzz_items
from neuroscribe.simulate.plugin import make_fuzz_judge, make_simulator

__all__ = ["SIMULATED_SPLITS", "fuzz_units", "pending", "simulate_many", "simulate_units"]

SIMULATED_SPLITS = (Split.CALIBRATE, Split.SCORE_TOP, Split.SCORE_RANDOM, Split.SCORE_OOD)
"""The splits every simulator predicts: calibration and every reported (held-out) split."""


def pending(
    explanations: Sequence[Explanation],
    by_key: Mapping[str, UnitExamples],
    simulators: Sequence[str],
    done: frozenset[tuple[str, str]],
) -> list[tuple[str, list[Explanation]]]:
    """Per simulator, the selected ok explanations of known units it has not yet done (simulators
    with nothing to do are left out)."""
    todo = [e for e in explanations if e.status == "ok" and e.selected and e.unit_key in by_key]
    work = [
        (name, [e for e in todo if (e.explanation_id, name) not in done]) for name in simulators
    ]
    return [(name, mine) for name, mine in work if mine]


def simulate_units(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Simulation]:
    """Every simulator on every selected explanation, over the held-out windows of its unit
    (``SIMULATED_SPLITS``), except the (explanation id, simulator) pairs in ``done``.
    Explanations go ``simulator.batch_jobs`` at a time to ``simulator.simulate_batch``: an
    endpoint's windows pooled under its concurrency, the in-process baselines batched. With
    ``cfg.budget.ci_width``, the held-out windows go in steps (``simulate.adaptive``)."""
    by_key = {u.unit.key: u for u in units}
    out: list[Simulation] = []
    for name, mine in pending(explanations, by_key, cfg.simulate.simulators, done):
        simulator = make_simulator(name, cfg.simulate, ledger, annotator=cfg.annotators.get(name))
        run = functools.partial(simulate_jobs, simulator, name)
        if cfg.budget.ci_width is not None:  # adaptive scoring: windows in steps
            out.extend(simulate_adaptive(name, mine, by_key, windows, cfg, run))
            continue
        jobs = [
            (e, [windows[w.window_id] for w in by_key[e.unit_key].in_splits(*SIMULATED_SPLITS)])
            for e in mine
        ]
        for sims in run(jobs):
            out.extend(sims)
    return out


def simulate_jobs(simulator: Simulator, name: str, jobs: Jobs) -> list[list[Simulation]]:
    """``simulator.simulate_batch`` of every (explanation, windows) job, in order,
    ``simulator.batch_jobs`` at a time; the progress advances by each call."""
    done: list[list[Simulation]] = []
    for chunk in track_chunks(jobs, simulator.batch_jobs, f"simulate {name}"):
        done.extend(simulator.simulate_batch(chunk))
    return done


def fuzz_units(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Score]:
    """Fuzzing (``score.fuzz.FUZZ_KINDS``) of every selected explanation, controls included,
    by every simulator, except the (explanation id, simulator) pairs in ``done``. The
    simulators' judges judge marked held-out windows (``neuroscribe.simulate.fuzz``); nothing
    when ``cfg.score.fuzz`` is off."""
    if not cfg.score.fuzz:
        return []
    by_key = {u.unit.key: u for u in units}
    items = {
        key: build_fuzz_items(unit, cfg.score.fuzz_windows, cfg.collect.seed)
        for key, unit in by_key.items()
    }
    pairs: list[FuzzPair] = []
    for name, mine in pending(explanations, by_key, cfg.simulate.simulators, done):
        judge = make_fuzz_judge(name, cfg.simulate, ledger, annotator=cfg.annotators.get(name))
        # A judge gets ``batch_jobs`` explanations per call: the in-process baselines batch
        # them; an LLM judge puts their calls in one pool of its concurrency (an endpoint would
        # otherwise wait for each unit's few calls in turn).
        for chunk in track_chunks(mine, judge.batch_jobs, f"fuzz     {name}"):
            verdicts = judge.judge_many([(e, items[e.unit_key]) for e in chunk], windows)
            for e, mine_verdicts in zip(chunk, verdicts, strict=True):
                no_items = (
                    "unit never fires" if by_key[e.unit_key].stats.max <= 0
                    else "no held-out window with firing tokens and at least as many silent ones"
                )
                pairs.append(FuzzPair(e.explanation_id, name, mine_verdicts,
                                      judge.unavailable, no_items))
    return fuzz_scores_many(pairs, cfg.score, cfg.collect.seed)
