"""``neuroscribe audit``: the auditing game. Plants known features in a copy of the subject,
runs the whole pipeline on the copy (the options of ``run``), and reports what the explanations
recovered. Its own options say what to plant; they are not part of the run config."""

from __future__ import annotations

import os
import time
from contextlib import closing
from typing import Annotated, Any

import typer
from rich.markup import escape

from neuroscribe.cli.app import app, out, state, user_errors, where
from neuroscribe.cli.options import config_options
from neuroscribe.cli.output import emit
from neuroscribe.cli.pipeline import (
    STAGE_SECTIONS,
    _config,
    check_input,
    progress_bars,
    stopped_by_sigterm,
)


@app.command()
@config_options(*STAGE_SECTIONS["run"])
def audit(
    overrides: dict[str, Any],
    plants: Annotated[
        int, typer.Option(min=1, help="Units of the site to plant (live ones, drawn at random "
                          "with collect.seed).", rich_help_panel="[audit]")
    ] = 16,
    kind: Annotated[
        str, typer.Option(help="word: each planted unit fires on one word drawn from the corpus "
                          "(neither rare nor a stop word); concept: on any of 3-5 related words.",
                          metavar="word|concept", rich_help_panel="[audit]")
    ] = "word",
    triggers: Annotated[
        str | None, typer.Option(help="Trigger words to plant, comma-separated (word plants; "
                                 "sets the number of plants). Default: drawn from the corpus.",
                                 rich_help_panel="[audit]")
    ] = None,
    concept: Annotated[
        list[str] | None, typer.Option(help="A concept to plant, name=word,word,word "
                                       "(repeat it). Default: the built-in list.",
                                       rich_help_panel="[audit]")
    ] = None,
    unplanted: Annotated[
        int | None, typer.Option(min=0, help="Unplanted live units collected alongside for "
                                 "comparison (default: as many as planted).",
                                 rich_help_panel="[audit]")
    ] = None,
    similarity: Annotated[
        float, typer.Option(help="Concept plants: recovered when the explanation's MiniLM "
                            "cosine similarity to the concept's words reaches this (or it "
                            "names one of them).", rich_help_panel="[audit]")
    ] = 0.5,
    sanity: Annotated[
        bool, typer.Option("--sanity/--no-sanity", help="Test every score kind on the planted "
                           "units (true explanation vs missing and extra label; simulates 3 "
                           "explanations per planted unit and simulator).",
                           rich_help_panel="[audit]")
    ] = True,
) -> None:
    """Plant known features in a copy of the subject (units of collect.site rewired to fire on
    a trigger, outputs unchanged), run every stage on the copy, and report per explainer and
    simulator how many planted triggers the selected explanations name."""
    with user_errors():
        from neuroscribe.audit import AuditSpec, plan_audit
        from neuroscribe.audit.triggers import parse_concepts
        from neuroscribe.errors import BadInput

        if kind not in ("word", "concept"):
            raise BadInput(f"unknown plant kind '{kind}'; use word or concept")
        cfg = _config(overrides)
        spec = AuditSpec(
            plants=plants,
            kind=kind,  # type: ignore[arg-type]
            triggers=None if triggers is None else tuple(triggers.split(",")),
            concepts=None if concept is None else parse_concepts(concept),
            unplanted=unplanted,
            similarity=similarity,
            seed=cfg.collect.seed,
        )
        warehouse = check_input(["run"], cfg)
        plan = plan_audit(cfg, spec)
        run_id, copy = _run(cfg, plan, warehouse, sanity)
        _report(warehouse, run_id, copy)
    where(warehouse)


def _run(cfg: Any, plan: Any, warehouse: str, sanity: bool) -> tuple[str, Any]:
    if not state.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    from flows.server import temporary_server

    t0 = time.perf_counter()
    with stopped_by_sigterm(), temporary_server(), progress_bars():
        from flows import audit as audit_flows

        run_id, copy = audit_flows.audit_flow(cfg, plan, warehouse, sanity)
    out.print(f"audit {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return run_id, copy


def _report(warehouse: str, run_id: str, copy: Any) -> None:
    from neuroscribe.registry import HEADLINE_SCORE
    from neuroscribe.warehouse import audits, open_readonly, sanity

    with closing(open_readonly(warehouse)) as con:
        units = audits.audit_units(con, run_id, HEADLINE_SCORE)
        recovery = audits.audit_recovery(con, run_id, HEADLINE_SCORE)
        tests = sanity.metric_sanity(con, run_id)
    out.print(
        escape(
            f"planted {len(copy.units)} units in a copy saved at {copy.folder}; function change "
            f"(max |Δ| of final hidden states and logits, {copy.function_windows} windows): "
            f"{copy.function_change:.2e}"
        ),
        highlight=False,
    )
    emit(
        ["unit", "trigger", "explainer", "explanation", "recovered", "why", "simulator",
         HEADLINE_SCORE, "beats controls"],
        [[u["unit_index"], u["trigger"], u["explainer"], u["explanation"],
          "yes" if u["recovered"] else "no", u["why"], u["simulator"] or "",
          _scored(u), _yes_no(u["beats_controls"])] for u in units],
        title="planted units (view audit_unit_scores): verdict, score [95% CI], and whether it "
        "beats the controls",
        right=[HEADLINE_SCORE],
    )
    emit(
        ["explainer", "simulator", "recovered", "rate (95% Wilson)",
         f"median {HEADLINE_SCORE}: planted", "recovered", "unplanted"],
        [[r["explainer"], r["simulator"], f"{r['n_recovered']}/{r['n_planted']}",
          f"{r['recovery_rate']:.0%} ({r['wilson_low']:.0%}-{r['wilson_high']:.0%})",
          _num(r["median_planted"]), _num(r["median_recovered"]), _num(r["median_unplanted"])]
         for r in recovery],
        title="recovery (audit_recovery)",
        right=["recovered", f"median {HEADLINE_SCORE}: planted", "unplanted"],
    )
    if tests:
        emit(
            ["simulator", "score kind", "units", "missing label", "extra label", "both",
             "NULL", "pass share", "passes"],
            [[t["simulator"], t["score_kind"], t["n_units"], t["n_missing_passed"],
              t["n_extra_passed"], t["n_passed"], t["n_undefined"],
              "n/a" if t["pass_share"] is None else f"{t['pass_share']:.0%}",
              "yes" if t["passes"] else "no"] for t in tests],
            title="metric sanity (metric_sanity): true explanation beats both perturbations",
            footer="a tie or a NULL does not beat; a kind passes at 90% of planted units",
            right=["units", "missing label", "extra label", "both", "NULL", "pass share"],
        )


def _scored(u: dict[str, Any]) -> str:
    if u["score"] is None:
        return f"n/a: {u['score_undefined_reason']}" if u["score_undefined_reason"] else "n/a"
    if u["ci_low"] is None or u["ci_high"] is None:
        return f"{u['score']:+.3f}"
    return f"{u['score']:+.3f} [{u['ci_low']:+.2f}, {u['ci_high']:+.2f}]"


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else "yes" if value else "no"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"
