"""The commands that read the warehouse (``query``, ``search``, ``export``, ``report``) and the
one that loads workers' handoffs into it (``ingest``)."""

from __future__ import annotations

import math
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from neuroscribe.cli.app import app, err, fail, out, quiet_libraries, state, user_errors, where
from neuroscribe.cli.output import check_format, emit


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run on a read-only connection.")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run SQL against the warehouse, read-only, and print the result."""
    from neuroscribe.warehouse import open_readonly
    from neuroscribe.warehouse.reads import query as read_query

    fmt = check_format(format)
    if not sql.strip():
        raise fail("the query is empty; give one SQL statement, e.g. 'select * from runs'")
    with user_errors(), closing(open_readonly(state.warehouse)) as con:
        columns, rows = read_query(con, sql)
    emit(columns, rows, fmt, footer=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")


@app.command()
def search(
    query_text: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for.")],
    text: Annotated[
        bool, typer.Option("--text", help="Match QUERY as a substring, ignoring case.")
    ] = False,
    regex: Annotated[
        bool, typer.Option("--regex", help="Match QUERY as a regular expression, ignoring case.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many matches.")] = 10,
    explainer: Annotated[
        str | None, typer.Option("--explainer", "--annotator", help="Only this explainer.")
    ] = None,
    site: Annotated[
        str | None, typer.Option(help="Only this site, e.g. layers.15.mlp or layers.*.mlp.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    backfill: Annotated[
        bool,
        typer.Option(
            help="First embed the stored explanations that have no embedding yet (opens the "
            "warehouse for writing)."
        ),
    ] = False,
) -> None:
    """Search explanations by meaning (MiniLM embeddings, most similar first) or, with --text
    or --regex, by their words (best score first)."""
    from neuroscribe import search as searching
    from neuroscribe.warehouse import connect, open_readonly

    fmt = check_format(format)
    if text and regex:
        raise fail("--text and --regex exclude each other")
    if limit < 1:
        raise fail(f"--limit must be at least 1, not {limit}")
    if not query_text.strip():
        raise fail("the search query is empty")
    mode: searching.Mode = "text" if text else "regex" if regex else "meaning"
    if mode == "meaning" or backfill:
        quiet_libraries()
    with user_errors():
        if backfill:
            with closing(connect(state.warehouse)) as con:  # migrates an older schema
                added = searching.save_embeddings(con, searching.backfill_rows(con))
            err.print(f"embedded {added} explanation{'s' if added != 1 else ''}")
        with closing(open_readonly(state.warehouse)) as con:
            found = searching.search(
                con, query_text, mode, limit=limit, explainer=explainer, site=site
            )
    if found.unembedded:
        err.print(
            f"{found.unembedded} of {found.searched} explanations have no embedding yet and were "
            "not searched; add --backfill to embed them"
        )
    columns = [c for c in searching.COLUMNS if mode == "meaning" or c != "similarity"]
    if fmt != "table":
        emit(columns, [[r[c] for c in columns] for r in found.rows], fmt)
        return
    shown = [c for c in columns if c not in ("sae_id", "unit_key", "explanation_id")]
    emit(
        shown,
        [[_search_cell(r[c]) for c in shown] for r in found.rows],
        title=f"{mode} search: {query_text}",
        footer=f"{len(found.rows)} of {found.searched} explanations",
    )


def _search_cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if isinstance(value, float) else str(value)


@app.command()
def export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    view: Annotated[
        str, typer.Option(help="The view to export: scored_explanations or model_diff.")
    ] = "scored_explanations",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="parquet, jsonl, csv, or neuronpedia (JSONL; scored_explanations only).",
        ),
    ] = "parquet",
    subject: Annotated[str | None, typer.Option(help="Subject name or id.")] = None,
    site: Annotated[str | None, typer.Option(help="Canonical site, e.g. layers.15.mlp.")] = None,
    explainer: Annotated[str | None, typer.Option(help="Only this explainer.")] = None,
    simulator: Annotated[str | None, typer.Option(help="Only this simulator.")] = None,
    score_kind: Annotated[str | None, typer.Option(help="Only this score kind.")] = None,
    min_score: Annotated[float | None, typer.Option(help="Keep scores at least this.")] = None,
    run_id: Annotated[
        str | None,
        typer.Option(help="Only rows scored by this run (model_diff: this comparison run)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Export scored_explanations (filtered) or model_diff with a manifest that traces every
    row."""
    from neuroscribe.export import check_view, export_view
    from neuroscribe.warehouse import open_readonly

    if min_score is not None and not math.isfinite(min_score):
        raise fail(f"--min-score must be a finite number, not {min_score}")
    with user_errors():
        check_view(view, fmt)  # before the warehouse is opened
        with closing(open_readonly(state.warehouse)) as con:
            manifest = export_view(
                con, view, out_path, fmt, run_id=run_id, force=force, subject=subject,
                site=site, explainer=explainer, simulator=simulator, score_kind=score_kind,
                min_score=min_score,
            )
    out.print(
        escape(
            f"{manifest.rows} rows -> {out_path} (sha256 {manifest.sha256[:12]}); "
            f"manifest: {out_path}.manifest.json"
        ),
        highlight=False,
    )


@app.command()
def report(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for index.html.")] = Path("report"),
    run_id: Annotated[str | None, typer.Option(help="One run (default: all finished).")] = None,
    max_units: Annotated[int, typer.Option(help="At most this many units.", min=1)] = 500,
) -> None:
    """Write a static HTML report: explanations, scores, and windows shaded by true and
    simulated activation; with finished comparison runs, compare.html (CKA heatmaps,
    universality, top changed units)."""
    from neuroscribe.report import write_report
    from neuroscribe.warehouse import open_readonly

    with user_errors(), closing(open_readonly(state.warehouse)) as con:
        path = write_report(con, out_dir, run_id, max_units=max_units)
    out.print(f"report: {escape(str(path.resolve()))}", highlight=False)


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="Folder that workers wrote handoffs into.")],
) -> None:
    """Load the workers' handoffs (`collect --handoff`) into the warehouse: every complete one
    not loaded before, one transaction each."""
    from neuroscribe.handoff import ingest as ingest_handoffs
    from neuroscribe.warehouse import connect, resolve_path

    with user_errors(), closing(connect(state.warehouse)) as con:
        result = ingest_handoffs(con, directory)
    for name, added in result.ingested.items():
        rows = ", ".join(f"{t} +{n}" for t, n in added.items())
        out.print(escape(f"ingested {name}: {rows}"), highlight=False)
    for name in result.already:
        out.print(escape(f"already ingested: {name}"), highlight=False)
    for name in result.partial:
        err.print(
            escape(f"skipped {name}: not complete (a worker still writing, or one that stopped)"),
            highlight=False,
        )
    out.print(
        f"{len(result.ingested)} ingested, {len(result.already)} already there, "
        f"{len(result.partial)} incomplete skipped"
    )
    where(str(resolve_path(state.warehouse)))
