"""What the report shows, read from the warehouse in a few bulk queries.

Scores come from the ``scored_explanations`` view (finished runs, ``ok`` explanations), limited
to selected explanations (best-of-n winners and the shuffled control). Windows, true activations
and simulations come from their tables for the units those scores cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

HELD_OUT = ("score_top", "score_random", "score_ood")


class ReportError(ValueError):
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
    # run_id -> (explainer, simulator) -> corr_top_random of every unit (None = undefined)
    run_scores: dict[str, dict[tuple[str, str], list[float | None]]]


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    rel = con.sql(sql, params=params)
    names = rel.columns
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def load_runs(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[RunInfo]:
    """The given run (any status, so a failed run can be inspected), else every finished run."""
    where = "run_id = ?" if run_id else "status = 'finished'"
    rows = con.sql(
        "SELECT run_id, status, config_hash, started_at, finished_at, neuroscribe_version"
        f" FROM runs WHERE {where} ORDER BY started_at, run_id",
        params=[run_id] if run_id else [],
    ).fetchall()
    if run_id and not rows:
        raise ReportError(f"no run '{run_id}' in the warehouse")
    return [RunInfo(*r) for r in rows]


def load_report(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    max_units: int | None = 500,
    windows_per_split: int = 5,
) -> ReportData:
    """Everything the report shows for one run (or all finished runs)."""
    runs = load_runs(con, run_id)
    run_ids = [r.run_id for r in runs]
    scored = _dicts(
        con,
        "SELECT unit_key, subject, site, unit_index, sae_id, explanation_id, explainer,"
        " explanation, simulator, score_kind, score, score_undefined_reason, ci_low, ci_high,"
        " run_id FROM scored_explanations WHERE selected AND list_contains(?, run_id)"
        " ORDER BY subject, site, sae_id NULLS FIRST, unit_index, explainer, explanation_id,"
        " simulator, score_kind",
        [run_ids],
    )
    units: dict[str, UnitView] = {}
    run_scores: dict[str, dict[tuple[str, str], list[float | None]]] = {r: {} for r in run_ids}
    for r in scored:
        if r["score_kind"] == "corr_top_random":
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
    for key, mx, rate in con.sql(
        "SELECT unit_key, max_activation, firing_rate FROM units WHERE list_contains(?, unit_key)",
        params=[keys],
    ).fetchall():
        shown[key].max_activation, shown[key].firing_rate = mx, rate
    _attach_windows(con, shown, windows_per_split)
    return ReportData(runs, list(shown.values()), total, run_scores)


def _attach_windows(
    con: duckdb.DuckDBPyConnection, units: dict[str, UnitView], per_split: int
) -> None:
    keys = list(units)
    rows = con.sql(
        "SELECT unit_key, window_id, split, top_rank, activations, tokens FROM ("
        "  SELECT uw.*, w.tokens, row_number() OVER (PARTITION BY uw.unit_key, uw.split"
        "    ORDER BY CASE WHEN uw.top_rank < 0 THEN 1 ELSE 0 END, uw.top_rank, uw.window_id) AS n"
        "  FROM unit_windows uw JOIN windows w USING (window_id)"
        "  WHERE list_contains(?, uw.unit_key) AND uw.split IN ('explain', ?, ?, ?))"
        " WHERE n <= ? ORDER BY unit_key, split, n",
        params=[keys, *HELD_OUT, per_split],
    ).fetchall()
    expl_ids = sorted({s.explanation_id for u in units.values() for s in u.scores})
    sims: dict[tuple[str, str], dict[tuple[str, str], tuple[float, ...]]] = {}
    for eid, sim, wid, unit_key, preds in con.sql(
        "SELECT s.explanation_id, s.simulator, s.window_id, e.unit_key, s.predictions"
        " FROM simulations s JOIN explanations e USING (explanation_id)"
        " WHERE s.status = 'ok' AND list_contains(?, s.explanation_id)",
        params=[expl_ids],
    ).fetchall():
        sims.setdefault((unit_key, wid), {})[(eid, sim)] = tuple(preds)
    order = {"explain": 0, "score_top": 1, "score_random": 2, "score_ood": 3}
    for key, wid, split, rank, acts, tokens in sorted(rows, key=lambda r: (r[0], order[r[2]])):
        units[key].windows.append(
            WindowView(wid, split, rank, tuple(tokens), tuple(acts), sims.get((key, wid), {}))
        )
