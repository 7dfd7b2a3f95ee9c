"""The simulate and fuzz stages over a run's units.

``simulate_units`` runs every simulator on every selected explanation over its unit's held-out
windows; ``fuzz_units`` has every simulator's fuzz judge judge marked held-out windows. Both skip
the (explanation id, simulator) pairs already done, so a resumed run only does what is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger, for_unit, in_unit
from neuroscribe.llm.fanout import fan_out
from neuroscribe.progress import track_chunks
from neuroscribe.records import Explanation, Score, Simulation, Split, UnitExamples, Window
from neuroscribe.score.fuzz import FuzzPair, fuzz_scores_many
from neuroscribe.simulate.adaptive import Jobs, simulate_adaptive
from neuroscribe.simulate.base import Simulator
from neuroscribe.simulate.fuzz import build_fuzz_items
from neuroscribe.simulate.fuzz_llm import LLMFuzzJudge
from neuroscribe.simulate.plugin import make_fuzz_judge, make_simulator

BATCH_JOBS = 512
"""Explanations per call of a simulator or judge that works across units (``simulate_batch``,
``judge_many``: the in-process baselines); the progress advances by each call."""

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


def simulate_many(
    simulator: Simulator, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
) -> list[list[Simulation]]:
    """``simulator.simulate(explanation, windows)`` for every job, in order. A simulator with a
    ``max_concurrency`` above 1 (an endpoint) gets every (explanation, window) pair of every job
    from one pool of that size, so concurrency is not capped by the windows of one unit; the
    others (in-process, batched) take one job at a time."""
    if simulator.max_concurrency > 1:
        parts = [(i, e, [w]) for i, (e, ws) in enumerate(jobs) for w in ws]
    else:
        parts = [(i, e, list(ws)) for i, (e, ws) in enumerate(jobs)]
    done = fan_out(
        lambda p: in_unit(p[1].unit_key, simulator.asimulate(p[1], p[2])),
        parts,
        simulator.max_concurrency,
    )
    out: list[list[Simulation]] = [[] for _ in jobs]
    for (i, _, _), sims in zip(parts, done, strict=True):
        out[i].extend(sims)
    return out


def simulate_jobs(simulator: Simulator, name: str, jobs: Jobs) -> list[list[Simulation]]:
    """The simulations of every (explanation, windows) job, in order: a simulator that works
    across units (``simulate_batch``) ``BATCH_JOBS`` at a time, the others
    ``2 x max_concurrency`` at a time (``simulate_many``); the progress advances by each."""
    batch = getattr(simulator, "simulate_batch", None)
    step = BATCH_JOBS if batch else 2 * simulator.max_concurrency
    done: list[list[Simulation]] = []
    for chunk in track_chunks(jobs, step, f"simulate {name}"):
        done.extend(batch(chunk) if batch else simulate_many(simulator, chunk))
    return done


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
    Explanations go ``2 x max_concurrency`` at a time, their windows pooled. With
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
        # A judge working across units (``judge_many``) gets many explanations at once: the
        # in-process baselines batch them; an LLM judge puts their calls in one pool of its
        # concurrency (an endpoint would otherwise wait for each unit's few calls in turn).
        many = getattr(judge, "judge_many", None)
        step = 2 * judge.max_concurrency if isinstance(judge, LLMFuzzJudge) else (
            BATCH_JOBS if many else 1
        )
        for chunk in track_chunks(mine, step, f"fuzz     {name}"):
            jobs = [(e, items[e.unit_key]) for e in chunk]
            if many:
                verdicts = many(jobs, windows)
            else:
                verdicts = []
                for e, its in jobs:
                    with for_unit(e.unit_key):
                        verdicts.append(judge.judge(e, its, windows))
            for e, mine_verdicts in zip(chunk, verdicts, strict=True):
                no_items = (
                    "unit never fires" if by_key[e.unit_key].stats.max <= 0
                    else "no held-out window with firing tokens and at least as many silent ones"
                )
                pairs.append(FuzzPair(e.explanation_id, name, mine_verdicts,
                                      judge.unavailable, no_items))
    return fuzz_scores_many(pairs, cfg.score, cfg.collect.seed)
