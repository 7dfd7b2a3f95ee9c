"""What a command prints after its run: scores per unit, the controls, the LLM calls, the
agreement statistics. Rows come from the warehouse's read functions (``warehouse.reads``)."""

from __future__ import annotations

import math
from contextlib import closing
from typing import Any

from neuroscribe.cli.app import err, out
from neuroscribe.cli.output import emit
from neuroscribe.config import RunConfig
from neuroscribe.explain.units import silent_annotators
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import nulls, open_readonly, reads, runs


def _score(value: float | None, lo: float | None, hi: float | None, reason: str | None) -> str:
    if value is None:
        return f"n/a: {reason}" if reason else "n/a"
    if lo is not None and hi is not None:
        return f"{value:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    return f"{value:+.2f}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def print_run_table(warehouse: str, run_id: str, explanation_ids: list[str]) -> None:
    """Per unit: each explanation's headline score under each simulator with its interval, the
    controls among them, and the unit's clarity; then per annotator: mean score and share of
    units that beat both controls. Rows come from the explanations the run worked on, whichever
    run first stored them (a repeated run finds its results already there)."""
    with closing(open_readonly(warehouse)) as con:
        rows = reads.run_table(con, explanation_ids, HEADLINE_SCORE)
        clarity = reads.clarity_by_unit(con, explanation_ids)
        comparisons = reads.control_comparisons(con, explanation_ids, [HEADLINE_SCORE])
    simulators = sorted({r["simulator"] for r in rows})
    cells: dict[tuple[tuple[str, int], str, str], dict[str, str]] = {}
    for r in rows:
        key = ((r["site"], r["unit_index"]), r["explainer"], r["explanation"] or "")
        cells.setdefault(key, {})[r["simulator"]] = _score(
            r["score"], r["ci_low"], r["ci_high"], r["score_undefined_reason"]
        )
    units = sorted({k[0] for k in cells}, key=lambda u: (u[1], u[0]))
    shown = _best_and_worst(units, rows)
    several_sites = len({site for site, _ in units}) > 1
    table: list[list[str]] = []
    sections: list[bool] = []
    for unit in shown:
        mine = [(k, v) for k, v in cells.items() if k[0] == unit]
        for i, ((_, explainer, text), by_sim) in enumerate(mine):
            c = clarity.get(unit)
            label = f"{unit[0]}/{unit[1]}" if several_sites else str(unit[1])
            table.append([
                label if i == 0 else "",
                explainer,
                text,
                *(by_sim.get(sim, "") for sim in simulators),
                "" if i or c is None else f"{c:.2f}",
            ])
            sections.append(i == len(mine) - 1)
    sim_columns = [f"sim: {sim}" for sim in simulators]
    emit(
        ["unit", "explainer", "explanation", *sim_columns, "clarity"],
        table,
        title=f"run {run_id}: {HEADLINE_SCORE}, correlation with the truth on held-out top + "
        "random windows, [95% bootstrap CI]",
        right=["unit", *sim_columns, "clarity"],
        no_wrap=["explainer", *sim_columns],
        max_width={"explanation": 50},
        sections=sections,
    )
    if len(shown) < len(units):
        out.print(
            f"{len(units)} units: the {UNITS_SHOWN} with the best and the {UNITS_SHOWN} with the "
            f"worst {HEADLINE_SCORE} are shown; every unit: neuroscribe report, neuroscribe "
            "export, or neuroscribe query \"select * from scored_explanations where run_id = "
            f"'{run_id}'\"",
            markup=False, highlight=False,
        )
    if comparisons:
        emit(
            ["explainer", "simulator", "units", "mean", "shuffled", "baseline", "beats both"],
            [
                [
                    c.explainer, c.simulator, str(c.n_units), _fmt(c.mean_score),
                    _control(c.mean_shuffled, c.n_shuffled_constant),
                    _control(c.mean_baseline, c.n_baseline_constant),
                    f"{c.n_beats_both}/{c.n_units} ({c.share_beats_both:.0%})",
                ]
                for c in comparisons
            ],
            title=f"per annotator ({HEADLINE_SCORE}): mean over units, and the share of units "
            "beating both controls (shuffled and n-gram baseline)",
            right=["units", "mean", "shuffled", "baseline", "beats both"],
            footer=(
                "a control whose predictions were constant counts as 0 (n const.)"
                if any(c.n_shuffled_constant or c.n_baseline_constant for c in comparisons)
                else None
            ),
        )


def _control(mean: float | None, n_constant: int) -> str:
    """A control's mean, with the units where it predicted a constant (counted as 0)."""
    return _fmt(mean) + (f" ({n_constant} const.)" if n_constant else "")


UNITS_SHOWN = 20
"""A run's table shows at most this many best and this many worst units (all when fewer)."""


Unit = tuple[str, int]
"""(site, index): one unit of the table (a run over several sites repeats indices)."""


def _best_and_worst(units: list[Unit], rows: list[dict[str, Any]]) -> list[Unit]:
    """All units when they fit, else the best and the worst ``UNITS_SHOWN`` by their best
    defined headline score among real explanations (units with none count as worst), best
    first."""
    if len(units) <= 2 * UNITS_SHOWN:
        return units
    best: dict[Unit, float] = {u: -math.inf for u in units}
    for r in rows:
        if r["score"] is not None and r["explainer"] != SHUFFLED_CONTROL:
            u = (r["site"], r["unit_index"])
            best[u] = max(best[u], r["score"])
    ranked = sorted(units, key=lambda u: (-best[u], u[1], u[0]))
    return ranked[:UNITS_SHOWN] + ranked[-UNITS_SHOWN:]


def silent_explainers(warehouse: str, explanation_ids: list[str], cfg: RunConfig) -> list[str]:
    """The configured explainers that produced no usable explanation in this run; each gets a
    warning line (printed first, above the tables)."""
    with closing(open_readonly(warehouse)) as con:
        explanations = annotated.load_explanations(con, explanation_ids)
    # an escalated explainer (``[budget]``) given no unit is silent only if it failed
    silent = silent_annotators(explanations, cfg.budget.split(cfg.explain.explainers)[0])
    for name in silent:
        err.print(
            f"warning: explainer {name} produced no usable explanation (every call failed; "
            "see the LLM calls below and `neuroscribe query \"select * from llm_calls where "
            "status <> 'ok'\"`)",
            markup=False, highlight=False,
        )
    return silent


def print_run_summary(warehouse: str, run_id: str, explanation_ids: list[str]) -> None:
    """What ``run`` and ``score`` print: the scores table, the LLM calls, the takeovers."""
    print_run_table(warehouse, run_id, explanation_ids)
    print_calls_summary(warehouse, run_id)
    print_adoptions(warehouse, run_id)


def print_null_summary(warehouse: str, run_id: str) -> None:
    """The random-model null of this run (``controls.random_model``): per annotator, the mean
    headline score of the trained and the random model's units, and the share of trained units
    above the random model's 95th percentile (view ``null_comparison``)."""
    with closing(open_readonly(warehouse)) as con:
        null_run = nulls.null_run_id(con, run_id)
        rows = nulls.null_comparison(con, run_id, HEADLINE_SCORE)
    if null_run is None:
        return
    columns = ["explainer", "simulator", "trained", "random", "units", "above random p95"]
    emit(
        columns,
        [
            [
                r["explainer"], r["simulator"], _fmt(r["trained_mean"]), _fmt(r["random_mean"]),
                f"{r['n_trained']} / {r['n_random']}",
                "n/a" if r["share_above_random_p95"] is None
                else f"{r['n_above_random_p95']}/{r['n_trained']} "
                f"({r['share_above_random_p95']:.0%})",
            ]
            for r in rows
        ],
        title=f"random-model null (run {null_run}, re-initialised subject): mean "
        f"{HEADLINE_SCORE} of trained and random units, and trained units above the random "
        "model's 95th percentile (view null_comparison)",
        right=columns[2:],
    )


def print_adoptions(warehouse: str, run_id: str) -> None:
    """Whose unfinished rows this run took over (an abandoned or failed run's), one line each."""
    with closing(open_readonly(warehouse)) as con:
        taken = runs.adoptions(con, run_id)
    for adoption in taken:
        out.print(adoption.sentence(), markup=False, highlight=False)


def print_calls_summary(warehouse: str, run_id: str) -> None:
    """LLM calls of this run per annotator: made, answered from the cache, failed (by kind),
    tokens and estimated cost; and the typed failures of explanations and simulations."""
    with closing(open_readonly(warehouse)) as con:
        calls = reads.calls_summary(con, run_id)
        failures = reads.failures(con, run_id)
    if calls:
        columns = [
            "annotator", "purpose", "calls", "cached", "failed", "failure kinds", "tokens in",
            "tokens out", "cost $",
        ]
        keys = [
            "annotator", "purpose", "calls", "cached", "failed", "failure_kinds", "tokens_in",
            "tokens_out", "cost_usd",
        ]
        emit(columns, [[r[k] for k in keys] for r in calls], title="LLM calls of this run",
             null="")
    for f in failures:
        out.print(f"{f['n']} {f['what']}s by {f['who']} failed: {f['failure']}", markup=False)


def print_agreement_summary(warehouse: str, run_id: str) -> None:
    with closing(open_readonly(warehouse)) as con:
        rows = reads.agreement_summary(con, run_id)
    emit(
        ["agreement kind", "rows", "mean value", "defined"],
        [[r["kind"], r["rows"], r["mean_value"], r["defined"]] for r in rows],
        title=f"run {run_id}: agreement statistics (view annotator_agreement)",
        null="n/a",
    )
