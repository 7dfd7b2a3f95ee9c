"""What the report shows, read from the warehouse in a few bulk queries.

Scores come from the ``scored_explanations`` view (finished runs, ``ok`` explanations), limited
to selected explanations (best-of-n winners and the shuffled control). Windows, true activations
and simulations come from their tables for the units those scores cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from neuroscribe.errors import BadInput
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.warehouse import report_rows
from neuroscribe.warehouse.runs import run_infos

HELD_OUT = ("score_top", "score_random", "score_ood")


class ReportError(BadInput):
    """The report cannot be made; the message says why."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    config_hash: str
    started_at: Any
    finished_at: Any
    version: str


@dataclass(frozen=True)
class ScoreRow:
    explanation_id: str
    explainer: str
    explanation: str
    simulator: str
    kind: str
    value: float | None
    reason: str | None
    ci_low: float | None
    ci_high: float | None
    run_id: str


@dataclass(frozen=True)
class WindowView:
    window_id: str
    split: str
    rank: int
    tokens: tuple[str, ...]
    activations: tuple[float, ...]
    # (explanation_id, simulator) -> predictions on the 0-10 scale
    simulated: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)


@dataclass
class UnitView:
    unit_key: str
    subject: str
    site: str
    unit_index: int
    sae_id: str | None
    max_activation: float
    firing_rate: float
    scores: list[ScoreRow] = field(default_factory=list)
    windows: list[WindowView] = field(default_factory=list)


@dataclass
class ReportData:
    runs: list[RunInfo]
    units: list[UnitView]
    units_total: int
    """Units the runs scored; ``units`` holds the first ``max_units`` of them."""
    # run_id -> (explainer, simulator) -> headline score of every unit (None = undefined)
    run_scores: dict[str, dict[tuple[str, str], list[float | None]]]


def load_runs(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[RunInfo]:
    """The given run (any status, so a failed run can be inspected), else every finished run."""
    rows = run_infos(con, run_id)
    if run_id and not rows:
        raise ReportError(f"no run '{run_id}' in the warehouse")
    return [RunInfo(**r) for r in rows]


def load_report(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    max_units: int | None = 500,
    windows_per_split: int = 5,
) -> ReportData:
    """Everything the report shows for one run (or all finished runs)."""
    runs = load_runs(con, run_id)
    run_ids = [r.run_id for r in runs]
    scored = report_rows.scored_rows(con, run_ids)
    units: dict[str, UnitView] = {}
    run_scores: dict[str, dict[tuple[str, str], list[float | None]]] = {r: {} for r in run_ids}
    for r in scored:
        if r["score_kind"] == HEADLINE_SCORE:
            run_scores[r["run_id"]].setdefault((r["explainer"], r["simulator"]), []).append(
                r["score"]
            )
        if r["unit_key"] not in units:
            units[r["unit_key"]] = UnitView(
                r["unit_key"], r["subject"], r["site"], r["unit_index"], r["sae_id"], 0.0, 0.0
            )
    total = len(units)
    keys = list(units)[: max_units if max_units is not None else None]
    shown = {k: units[k] for k in keys}
    for r in scored:
        if r["unit_key"] in shown:
            shown[r["unit_key"]].scores.append(
                ScoreRow(r["explanation_id"], r["explainer"], r["explanation"] or "",
                         r["simulator"], r["score_kind"], r["score"],
                         r["score_undefined_reason"], r["ci_low"], r["ci_high"], r["run_id"])
            )
    for a in report_rows.unit_activity(con, keys):
        shown[a["unit_key"]].max_activation = a["max_activation"]
        shown[a["unit_key"]].firing_rate = a["firing_rate"]
    _attach_windows(con, shown, windows_per_split)
    return ReportData(runs, list(shown.values()), total, run_scores)


def _attach_windows(
    con: duckdb.DuckDBPyConnection, units: dict[str, UnitView], per_split: int
) -> None:
    rows = report_rows.first_windows(con, list(units), ("explain", *HELD_OUT), per_split)
    expl_ids = sorted({s.explanation_id for u in units.values() for s in u.scores})
    sims: dict[tuple[str, str], dict[tuple[str, str], tuple[float, ...]]] = {}
    for sim in report_rows.ok_simulations(con, expl_ids):
        sims.setdefault((sim["unit_key"], sim["window_id"]), {})[
            (sim["explanation_id"], sim["simulator"])
        ] = tuple(sim["predictions"])
    order = {"explain": 0, "score_top": 1, "score_random": 2, "score_ood": 3}
    for w in sorted(rows, key=lambda w: (w["unit_key"], order[w["split"]])):
        key, wid = w["unit_key"], w["window_id"]
        units[key].windows.append(
            WindowView(
                wid, w["split"], w["top_rank"], tuple(w["tokens"]), tuple(w["activations"]),
                sims.get((key, wid), {}),
            )
        )
