"""A small, realistic warehouse for tests of views, exports and reports.

``build_warehouse(path)`` writes, through the warehouse's ``save_*`` functions, one subject
with four units on two sites, two explainers plus the shuffled control, two simulators, three
score kinds (some undefined), a best-of-n loser, a failed explanation, per-token simulations on
the held-out windows, and a second run that never finished (its rows must stay out of every
view). The hand-chosen ``corr_top_random`` values are in ``CORR``; tests check the views
against them.

Import with ``sys.path`` pointing at ``tests/`` (``tests/`` is not a package).
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from neuroscribe.config import RunConfig
from neuroscribe.ids import content_hash
from neuroscribe.records import (
    Explanation,
    PromptRef,
    Score,
    Simulation,
    Split,
    Subject,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
    Window,
)
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.annotations import save_explanations, save_scores, save_simulations
from neuroscribe.warehouse.collection import save_collection
from neuroscribe.warehouse.runs import finish_run, start_run

RUN_ID = "20250101T000000-finished"
UNFINISHED_RUN_ID = "20250102T000000-running"
SUBJECT = Subject(
    name="tiny-llama", weights_hash="0123456789abcdef", architecture="llama", n_layers=2
)
EXPLAINER_A = "fake/explainer-a"
EXPLAINER_B = "fake/explainer-b"
CONTROL = "control/shuffled"
SIM_LEX = "baseline/lexical"
SIM_FAKE = "fake/simulator"
SIMULATORS = (SIM_LEX, SIM_FAKE)
KINDS = ("corr_top_random", "corr_random", "ev_calibrated")
PROMPT = PromptRef(name="explain_highlight", version="1", sha="feedc0de")
UNITS = (("layers.1.mlp", 0), ("layers.1.mlp", 1), ("layers.1.mlp", 2), ("layers.0.resid", 5))
WORDS = ("fish", " &", " <chips>", ' "quoted"', " the", " sea", " and", " salt", "\n", " é")

# (site, index) -> explainer -> (text, {simulator: corr_top_random}); None = undefined score.
CORR: dict[tuple[str, int], dict[str, tuple[str, dict[str, float | None]]]] = {
    ("layers.1.mlp", 0): {
        EXPLAINER_A: ('mentions of "fish" & <chips>', {SIM_LEX: 0.80, SIM_FAKE: 0.70}),
        EXPLAINER_B: ("seafood words", {SIM_LEX: 0.60, SIM_FAKE: 0.75}),
        CONTROL: ("the and of", {SIM_LEX: 0.05, SIM_FAKE: -0.02}),
    },
    ("layers.1.mlp", 1): {
        EXPLAINER_A: ("punctuation", {SIM_LEX: 0.10, SIM_FAKE: 0.20}),
        EXPLAINER_B: ("the word salt", {SIM_LEX: 0.90, SIM_FAKE: 0.85}),
        CONTROL: ("sea fish", {SIM_LEX: 0.00, SIM_FAKE: 0.01}),
    },
    ("layers.1.mlp", 2): {
        EXPLAINER_A: ("quoted text", {SIM_LEX: None, SIM_FAKE: 0.30}),
        EXPLAINER_B: ("ampersands", {SIM_LEX: 0.35, SIM_FAKE: 0.25}),
        CONTROL: ("chips", {SIM_LEX: None, SIM_FAKE: 0.40}),  # beats both; must never be "best"
    },
    ("layers.0.resid", 5): {
        EXPLAINER_A: ("line breaks", {SIM_LEX: 0.50, SIM_FAKE: 0.55}),
        CONTROL: ("salt", {SIM_LEX: 0.10, SIM_FAKE: 0.10}),
    },
}
LOSER = (("layers.1.mlp", 0), EXPLAINER_A, "any food", 0.95)  # not selected: never in views
FAILED = (("layers.0.resid", 5), EXPLAINER_B)  # failed explanation: no scores


def other_kinds(corr: float | None) -> dict[str, float | None]:
    """The scores of the other kinds, derived from corr_top_random."""
    if corr is None:
        return {"corr_top_random": None, "corr_random": None, "ev_calibrated": None}
    return {
        "corr_top_random": corr,
        "corr_random": round(corr - 0.1, 4),
        "ev_calibrated": round(corr * corr - 0.05, 4),
    }


@dataclass
class BuiltWarehouse:
    """What ``build_warehouse`` wrote, for assertions."""

    path: Path
    run_id: str
    unit_keys: dict[tuple[str, int], str]
    explanations: list[Explanation] = field(default_factory=list)
    windows: dict[str, Window] = field(default_factory=dict)


def _unit(site: str, index: int, seed: int) -> tuple[UnitExamples, list[Window]]:
    windows, unit_windows = [], []
    layout = [
        (Split.EXPLAIN, 0),
        (Split.EXPLAIN, 1),
        (Split.VALIDATE, 2),
        (Split.CALIBRATE, 3),
        (Split.SCORE_TOP, 4),
        (Split.SCORE_TOP, 5),
        (Split.SCORE_RANDOM, -1),
        (Split.SCORE_RANDOM, -1),
    ]
    for i, (split, rank) in enumerate(layout):
        tokens = tuple(WORDS[(seed * 3 + i + j * (j + 1) // 2) % len(WORDS)] for j in range(8))
        ids = tuple(WORDS.index(t) for t in tokens)
        doc = f"doc-{site}-{index}-{i}"
        w = Window(
            window_id=Window.make_id("corpus", doc, 0, ids),
            corpus_id="corpus",
            doc_id=doc,
            start=0,
            token_ids=ids,
            tokens=tokens,
        )
        top = split != Split.SCORE_RANDOM
        acts = tuple(
            round(
                (6.0 - rank * 0.5 if top and t.strip() == "fish" else 0.0)
                + 0.3 * math.sin(seed + i + j) ** 2,
                3,
            )
            for j, t in enumerate(tokens)
        )
        windows.append(w)
        unit_windows.append(
            UnitWindow(window_id=w.window_id, split=split, rank=rank, activations=acts)
        )
    uid = UnitId(subject_id=SUBJECT.subject_id, site=site, index=index)
    stats = UnitStats(
        n_tokens=4096, max=6.3, mean=0.4, firing_rate=0.05, quantiles=(0.0, 0.1, 2.0), dead=False
    )
    return UnitExamples(unit=uid, stats=stats, windows=tuple(unit_windows)), windows


def _explanation(
    unit_key: str, explainer: str, text: str | None, sample: int = 0, selected: bool = True
) -> Explanation:
    failed = text is None
    return Explanation(
        explanation_id=content_hash(unit_key, explainer, sample, text),
        unit_key=unit_key,
        explainer=explainer,
        sample_index=sample,
        status="failed" if failed else "ok",
        text=text,
        failure="unparseable" if failed else None,
        prompt=None if explainer == CONTROL else PROMPT,
        selected=selected,
    )


def _scores(expl: Explanation, corr_by_sim: dict[str, float | None]) -> list[Score]:
    out = []
    for sim, corr in corr_by_sim.items():
        for kind, value in other_kinds(corr).items():
            out.append(
                Score(
                    explanation_id=expl.explanation_id,
                    simulator=sim,
                    kind=kind,
                    value=value,
                    reason="constant simulation" if value is None else None,
                    n_tokens=32,
                    n_windows=4,
                    ci_low=None if value is None else round(value - 0.1, 4),
                    ci_high=None if value is None else round(value + 0.1, 4),
                )
            )
    return out


def _simulations(expl: Explanation, unit: UnitExamples, quality: float) -> list[Simulation]:
    """Predictions on the 0-10 scale, closer to the truth the higher ``quality`` is."""
    sims = []
    for sim in SIMULATORS:
        for w in unit.in_splits(Split.SCORE_TOP, Split.SCORE_RANDOM):
            preds = tuple(
                round(min(10.0, max(0.0, quality * a * 10 / 6.3 + (1 - quality) * (j % 3))), 2)
                for j, a in enumerate(w.activations)
            )
            sims.append(
                Simulation(
                    simulation_id=content_hash(expl.explanation_id, sim, w.window_id),
                    explanation_id=expl.explanation_id,
                    simulator=sim,
                    window_id=w.window_id,
                    predictions=preds,
                    prompt=PROMPT,
                )
            )
    return sims


def build_warehouse(path: Path) -> BuiltWarehouse:
    """Write the small warehouse to ``path`` (created) and return what was written."""
    cfg = RunConfig()
    built = BuiltWarehouse(path=path, run_id=RUN_ID, unit_keys={})
    units, windows = [], []
    for seed, (site, index) in enumerate(UNITS):
        unit, ws = _unit(site, index, seed)
        units.append(unit)
        windows.extend(ws)
        built.unit_keys[(site, index)] = unit.unit.key
    built.windows = {w.window_id: w for w in windows}
    by_key = {u.unit.key: u for u in units}
    explanations, scores, sims = [], [], []
    for key, per_explainer in CORR.items():
        ukey = built.unit_keys[key]
        for explainer, (text, corr) in per_explainer.items():
            e = _explanation(ukey, explainer, text)
            explanations.append(e)
            scores += _scores(e, corr)
            defined = [v for v in corr.values() if v is not None]
            sims += _simulations(e, by_key[ukey], max(0.0, sum(defined) / max(1, len(defined))))
    (lsite, lindex), lexpl, ltext, lcorr = LOSER
    loser = _explanation(built.unit_keys[(lsite, lindex)], lexpl, ltext, 1, selected=False)
    explanations.append(loser)
    scores += _scores(loser, {SIM_LEX: lcorr, SIM_FAKE: lcorr})
    explanations.append(_explanation(built.unit_keys[FAILED[0]], FAILED[1], None))
    built.explanations = explanations
    with closing(connect(path)) as con:
        start_run(con, RUN_ID, cfg)
        save_collection(con, RUN_ID, SUBJECT, "corpus", windows, units)
        save_explanations(con, RUN_ID, cfg.config_hash, explanations)
        save_simulations(con, RUN_ID, sims)
        save_scores(con, RUN_ID, scores)
        finish_run(con, RUN_ID, "finished")
        # A second run that never finished: a high score that no view may show.
        start_run(con, UNFINISHED_RUN_ID, cfg)
        ghost = _explanation(built.unit_keys[UNITS[0]], "fake/explainer-c", "ghost text")
        save_explanations(con, UNFINISHED_RUN_ID, cfg.config_hash, [ghost])
        save_scores(con, UNFINISHED_RUN_ID, _scores(ghost, {SIM_LEX: 0.99}))
    return built
