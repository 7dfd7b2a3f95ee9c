"""The ``neuroscribe`` command line."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from neuroscribe import progress
from neuroscribe.config import ConfigError, RunConfig, load_config

app = typer.Typer(
    help="Explain the units of a transformer and test each explanation on held-out text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Off a terminal (pipes, logs, CI) rich would wrap tables at 80 columns; give them room.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class State:
    warehouse: str | None = None
    config: Path | None = None
    verbose: bool = False


state = State()


@app.callback()
def main(
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="DuckDB warehouse file [env NEUROSCRIBE_WAREHOUSE; default "
            "warehouse/neuroscribe.duckdb]."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file; its tables mirror the run config.")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's logs and full tracebacks.")] = False,
) -> None:
    state.warehouse, state.config, state.verbose = warehouse, config, verbose


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Known bad-input errors become one message and exit code 2; others exit 1."""
    from neuroscribe.collect import CollectError
    from neuroscribe.models import ModelNotFoundError
    from neuroscribe.warehouse import WarehouseError

    try:
        yield
    except (ConfigError, CollectError, ModelNotFoundError, WarehouseError, ValueError) as e:
        if state.verbose:
            err.print_exception()
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def rich_reporter(prog: Progress) -> progress.Reporter:
    @contextmanager
    def report(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        task_id = prog.add_task(description, total=total)
        try:
            yield lambda n: prog.advance(task_id, n)
        finally:
            prog.update(task_id, completed=prog.tasks[task_id].total or 0)

    return report


def _overrides(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


Model = Annotated[
    str | None,
    typer.Option(help="Subject model: hub name, local path, or 'smollm2-135m-instruct'."),
]
GgufFile = Annotated[str | None, typer.Option(help="GGUF file inside --model.")]
Site = Annotated[str | None, typer.Option(help="Canonical site, e.g. layers.15.mlp.")]
Units = Annotated[int | None, typer.Option(help="Units 0..N-1 of the site.")]
Corpus = Annotated[
    str | None,
    typer.Option(help="'stdlib', a .txt/.jsonl/.parquet file or folder, or hf:<dataset>."),
]
MaxWindows = Annotated[int | None, typer.Option(help="Windows of the corpus to read.")]
Explainers = Annotated[str | None, typer.Option(help="Comma-separated backend/model.")]
Simulators = Annotated[str | None, typer.Option(help="Comma-separated backend/model.")]
Samples = Annotated[int | None, typer.Option(help="Explanations sampled per unit.")]
Dtype = Annotated[str | None, typer.Option(help="float32 or bfloat16 for collection.")]


def _config(**flags: Any) -> RunConfig:
    """The config file, then the command's flags (those given) on top."""
    keys = {
        "model": "subject.model",
        "gguf_file": "subject.gguf_file",
        "dtype": "subject.dtype",
        "site": "collect.site",
        "units": "collect.units",
        "max_windows": "collect.max_windows",
        "corpus": "corpus.source",
        "explainers": "explain.explainers",
        "samples": "explain.samples",
        "simulators": "simulate.simulators",
    }
    lists = {"explainers", "simulators"}
    overrides = {
        keys[k]: _split_list(v) if k in lists else v for k, v in flags.items() if v is not None
    }
    return load_config(state.config, overrides)


@app.command()
def run(
    model: Model = None,
    gguf_file: GgufFile = None,
    site: Site = None,
    units: Units = None,
    corpus: Corpus = None,
    max_windows: MaxWindows = None,
    explainers: Explainers = None,
    simulators: Simulators = None,
    samples: Samples = None,
    dtype: Dtype = None,
) -> None:
    """Run every stage (collect, explain, simulate, score, agree) and store it all."""
    with user_errors():
        cfg = _config(
            model=model,
            gguf_file=gguf_file,
            site=site,
            units=units,
            corpus=corpus,
            max_windows=max_windows,
            explainers=explainers,
            simulators=simulators,
            samples=samples,
            dtype=dtype,
        )
        run_id, warehouse, ids = run_stage("run", cfg)
    print_run_table(warehouse, run_id, ids)
    print_calls_summary(warehouse, run_id)
    _where(warehouse)


@app.command()
def collect(
    model: Model = None,
    gguf_file: GgufFile = None,
    site: Site = None,
    units: Units = None,
    corpus: Corpus = None,
    max_windows: MaxWindows = None,
    dtype: Dtype = None,
    handoff: Annotated[
        Path | None,
        typer.Option(
            help="Work as a worker: write the collection as Parquet into this folder for "
            "`neuroscribe ingest`, without opening the warehouse."
        ),
    ] = None,
) -> None:
    """Collect windows, activations, statistics and held-out splits (no annotators)."""
    with user_errors():
        cfg = _config(
            model=model,
            gguf_file=gguf_file,
            site=site,
            units=units,
            corpus=corpus,
            max_windows=max_windows,
            dtype=dtype,
        )
        if handoff is not None:
            path = collect_handoff(cfg, handoff)
            out.print(f"handoff: {path.resolve()}")
            out.print(f"load it with: neuroscribe ingest {handoff}")
            return
        run_id, warehouse, _ = run_stage("collect", cfg)
    _where(warehouse)


def collect_handoff(cfg: RunConfig, directory: Path) -> Path:
    """A worker's collection: checked, collected, written as a handoff (no warehouse, no
    Prefect server)."""
    from flows.pipeline import new_run_id
    from neuroscribe.handoff import write_collection
    from neuroscribe.stages import collect_units, preflight

    if not state.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    preflight(cfg, annotators=False)
    run_id, started = new_run_id(cfg), datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    result = collect_units(cfg)
    path = write_collection(directory, run_id, cfg, result, started)
    out.print(f"collect {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return path


@app.command()
def score(
    model: Model = None,
    gguf_file: GgufFile = None,
    site: Site = None,
    units: Units = None,
    simulators: Simulators = None,
) -> None:
    """Simulate and score the stored explanations of collected units with the configured
    simulators, doing only what is missing."""
    with user_errors():
        cfg = _config(
            model=model, gguf_file=gguf_file, site=site, units=units, simulators=simulators
        )
        run_id, warehouse, ids = run_stage("score", cfg)
    print_run_table(warehouse, run_id, ids)
    print_calls_summary(warehouse, run_id)
    _where(warehouse)


@app.command()
def agree(
    model: Model = None,
    gguf_file: GgufFile = None,
    site: Site = None,
    units: Units = None,
) -> None:
    """Agreement between annotators from the stored predictions (no LLM calls)."""
    with user_errors():
        cfg = _config(model=model, gguf_file=gguf_file, site=site, units=units)
        run_id, warehouse, _ = run_stage("agree", cfg)
    from neuroscribe.warehouse import open_readonly

    with closing(open_readonly(warehouse)) as con:
        rows = con.execute(
            "SELECT kind, count(*), round(avg(value), 3), count(value) FROM agreements"
            " WHERE run_id = ? GROUP BY kind ORDER BY kind",
            [run_id],
        ).fetchall()
    table = Table(
        "agreement kind",
        "rows",
        "mean value",
        "defined",
        title=f"run {run_id}: agreement statistics (view annotator_agreement)",
    )
    for r in rows:
        table.add_row(*("n/a" if v is None else str(v) for v in r))
    out.print(table)
    _where(warehouse)


def _where(warehouse: str) -> None:
    out.print(f"warehouse: {Path(warehouse).resolve()}")
    out.print(f'try: neuroscribe --warehouse {warehouse} query "select * from scored_explanations"')


def check_input(flows: Sequence[str], cfg: RunConfig) -> str:
    """Every check that can fail on bad input for these flows (``run``, ``collect``, ``score``,
    ``agree``), before a run is recorded and before Prefect starts. Returns the warehouse path."""
    from neuroscribe.stages import check_annotators, preflight
    from neuroscribe.warehouse import connect, resolve_path

    if not state.verbose:
        # transformers draws its own bars while loading weights; ours say what is going on.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    warehouse = str(resolve_path(state.warehouse))
    # Every check that can fail on bad input runs here, before a run is recorded and before
    # Prefect starts: an unwritable warehouse, a missing corpus or model, a wrong site.
    connect(warehouse).close()
    if "run" in flows or "collect" in flows:
        preflight(cfg, annotators="run" in flows)
    if "score" in flows and "run" not in flows:
        check_annotators(cfg, explainers=False)
    return warehouse


def run_stage(stage: str, cfg: RunConfig) -> tuple[str, str, list[str]]:
    """Check the input, then run one Prefect flow (``run``, ``collect``, ``score`` or ``agree``)
    with progress bars. Returns (run id, warehouse path, the ids the flow worked on)."""
    warehouse = check_input([stage], cfg)
    if not state.verbose:
        # Errors are reported once, by this command; Prefect's own log would repeat them.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    from flows import pipeline

    flow = pipeline.STAGE_FLOWS[stage]
    run_id = pipeline.new_run_id(cfg)
    t0 = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as prog:
        progress.set_reporter(rich_reporter(prog))
        try:
            ids = flow(cfg, warehouse, run_id)
        finally:
            progress.set_reporter(None)
    out.print(f"{stage} {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return run_id, warehouse, ids


@app.command()
def serve(
    cron: Annotated[
        str | None, typer.Option(help="Cron expression, e.g. '0 3 * * 1' (schedule.cron).")
    ] = None,
    interval_seconds: Annotated[
        float | None,
        typer.Option(help="Instead of --cron: a run every N seconds (schedule.interval_seconds)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the cron (schedule.timezone).")
    ] = None,
    flows: Annotated[
        str | None,
        typer.Option(help="Comma-separated flows to deploy: run, collect, score, agree."),
    ] = None,
) -> None:
    """Serve the pipeline (and stage flows) as Prefect deployments on the config's schedule,
    against the Prefect server at PREFECT_API_URL, until interrupted."""
    with user_errors():
        if cron is not None and interval_seconds is not None:
            raise ConfigError("give --cron or --interval-seconds, not both")
        schedule = load_config(state.config).schedule.model_dump()
        if cron is not None:
            schedule.update(cron=cron, interval_seconds=None)
        if interval_seconds is not None:
            schedule.update(interval_seconds=interval_seconds, cron=None)
        if timezone is not None:
            schedule["timezone"] = timezone
        if flows is not None:
            schedule["flows"] = _split_list(flows) or []
        cfg = load_config(state.config, {"schedule": schedule})
        if cfg.schedule.cron is None and cfg.schedule.interval_seconds is None:
            raise ConfigError(
                "no schedule: set schedule.cron (or schedule.interval_seconds) in the config, "
                "or pass --cron"
            )
        warehouse = str(Path(check_input(cfg.schedule.flows, cfg)).resolve())
        if not state.verbose:
            # A service: warnings (retries, failed runs) show here and in Prefect's UI.
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        from flows import deployments

        url = deployments.check_server()
        served = deployments.build_deployments(cfg, warehouse)
    when = cfg.schedule.cron or f"every {cfg.schedule.interval_seconds:g} s"
    out.print(
        f"serving {', '.join(cfg.schedule.flows)} ({when}, {cfg.schedule.timezone}) against "
        f"{url}; warehouse {warehouse}. Ctrl-C stops."
    )
    deployments.serve_scheduled(served)


def print_run_table(warehouse: str, run_id: str, explanation_ids: list[str]) -> None:
    """Per unit: each explanation's score under each simulator with its interval, the controls
    among them, and the unit's clarity; then per annotator: mean score and share of units that
    beat both controls. Rows come from the explanations the run worked on, whichever run first
    stored them (a repeated run finds its results already there)."""
    from neuroscribe.score.controls import compare_with_controls
    from neuroscribe.warehouse import open_readonly, store

    ids = explanation_ids
    with closing(open_readonly(warehouse)) as con:
        rows = con.execute(
            "SELECT unit_index, explainer, explanation, simulator, score, ci_low, ci_high,"
            " score_undefined_reason FROM scored_explanations"
            " WHERE list_contains(?, explanation_id) AND score_kind = 'corr_top_random'"
            " ORDER BY unit_index, explainer, simulator",
            [ids],
        ).fetchall()
        # Each unit's clarity from the latest finished run that measured it (this one, for `run`).
        clar = dict(
            con.execute(
                "SELECT u.unit_index, arg_max(a.value, r.started_at) FROM agreements a"
                " JOIN units u USING (unit_key) JOIN runs r ON r.run_id = a.run_id"
                " JOIN explanations e ON e.unit_key = a.unit_key"
                " WHERE a.kind = 'clarity' AND r.status = 'finished'"
                " AND list_contains(?, e.explanation_id) GROUP BY u.unit_index",
                [ids],
            ).fetchall()
        )
        explanations = store.load_explanations(con, ids)
        scores = store.load_scores(con, ids)
    simulators = sorted({r[3] for r in rows})
    table = Table(
        title=f"run {run_id}: correlation with the truth on held-out top + random "
        "windows, [95% bootstrap CI]"
    )
    table.add_column("unit", justify="right")
    table.add_column("explainer", no_wrap=True)
    table.add_column("explanation", max_width=50)
    for sim in simulators:
        table.add_column(f"sim: {sim}", justify="right", no_wrap=True)
    table.add_column("clarity", justify="right")
    cells: dict[tuple[int, str, str], dict[str, str]] = {}
    for unit, explainer, text, sim, value, lo, hi, reason in rows:
        cell = cells.setdefault((unit, explainer, text or ""), {})
        if value is None:
            cell[sim] = f"n/a: {reason}" if reason else "n/a"
        elif lo is not None and hi is not None:
            cell[sim] = f"{value:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        else:
            cell[sim] = f"{value:+.2f}"
    units = sorted({k[0] for k in cells})
    for unit in units:
        mine = [(k, v) for k, v in cells.items() if k[0] == unit]
        for i, ((_, explainer, text), by_sim) in enumerate(mine):
            c = clar.get(unit)
            table.add_row(
                str(unit) if i == 0 else "",
                explainer,
                text,
                *(by_sim.get(sim, "") for sim in simulators),
                "" if i or c is None else f"{c:.2f}",
                end_section=i == len(mine) - 1,
            )
    out.print(table)
    comparisons = compare_with_controls(scores, explanations, ["corr_top_random"])
    if comparisons:
        summary = Table(
            title="per annotator (corr_top_random): mean over units, and the share "
            "of units beating both controls (shuffled and n-gram baseline)"
        )
        for col in (
            "explainer",
            "simulator",
            "units",
            "mean",
            "shuffled",
            "baseline",
            "beats both",
        ):
            summary.add_column(
                col, justify="left" if col in ("explainer", "simulator") else "right"
            )
        for c in comparisons:
            summary.add_row(
                c.explainer,
                c.simulator,
                str(c.n_units),
                _fmt(c.mean_score),
                _fmt(c.mean_shuffled),
                _fmt(c.mean_baseline),
                f"{c.n_beats_both}/{c.n_units} ({c.share_beats_both:.0%})",
            )
        out.print(summary)


def print_calls_summary(warehouse: str, run_id: str) -> None:
    """LLM calls of this run per annotator: made, answered from the cache, failed (by kind),
    tokens and estimated cost; and the typed failures of explanations and simulations."""
    from neuroscribe.warehouse import open_readonly

    with closing(open_readonly(warehouse)) as con:
        calls = con.execute(
            "SELECT annotator, purpose, count(*) FILTER (WHERE NOT cache_hit),"
            " count(*) FILTER (WHERE cache_hit), count(*) FILTER (WHERE status <> 'ok'),"
            " string_agg(DISTINCT split_part(error, ':', 1), ', ')"
            "   FILTER (WHERE status <> 'ok'),"
            " sum(prompt_tokens) FILTER (WHERE NOT cache_hit),"
            " sum(completion_tokens) FILTER (WHERE NOT cache_hit), sum(cost_usd)"
            " FROM llm_calls WHERE run_id = ? GROUP BY ALL ORDER BY ALL",
            [run_id],
        ).fetchall()
        failures = con.execute(
            "SELECT 'explanation', explainer, failure, count(*) FROM explanations"
            " WHERE run_id = ? AND status = 'failed' GROUP BY ALL UNION ALL"
            " SELECT 'simulation', simulator, failure, count(*) FROM simulations"
            " WHERE run_id = ? AND status = 'failed' GROUP BY ALL ORDER BY ALL",
            [run_id, run_id],
        ).fetchall()
    if calls:
        table = Table(
            "annotator",
            "purpose",
            "calls",
            "cached",
            "failed",
            "failure kinds",
            "tokens in",
            "tokens out",
            "cost $",
            title="LLM calls of this run",
        )
        for row in calls:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
    for what, who, kind, n in failures:
        out.print(f"{n} {what}s by {who} failed: {kind}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run on a read-only connection.")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run SQL against the warehouse, read-only, and print the result."""
    import duckdb

    from neuroscribe.warehouse import open_readonly

    if format not in ("table", "csv", "json"):
        raise fail(f"unknown format '{format}'; use table, csv or json")
    with user_errors(), closing(open_readonly(state.warehouse)) as con:
        try:
            rel = con.execute(sql)
        except duckdb.Error as e:
            first = str(e).splitlines()[0]
            if "read-only" in first.lower() or "read only" in first.lower():
                raise fail(
                    f"the warehouse is opened read-only for queries; writes are refused ({first})"
                ) from None
            raise fail(first) from None
        columns = [d[0] for d in rel.description or []]
        rows = rel.fetchall()
    if format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif format == "json":
        sys.stdout.write(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1)
            + "\n"
        )
    else:
        table = Table(*columns)
        for r in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in r))
        out.print(table)
        out.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")


if __name__ == "__main__":
    app()


@app.command()
def export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="parquet, jsonl, csv, or neuronpedia (JSONL).")
    ] = "parquet",
    subject: Annotated[str | None, typer.Option(help="Subject name or id.")] = None,
    site: Annotated[str | None, typer.Option(help="Canonical site, e.g. layers.15.mlp.")] = None,
    explainer: Annotated[str | None, typer.Option(help="Only this explainer.")] = None,
    simulator: Annotated[str | None, typer.Option(help="Only this simulator.")] = None,
    score_kind: Annotated[str | None, typer.Option(help="Only this score kind.")] = None,
    min_score: Annotated[float | None, typer.Option(help="Keep scores at least this.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Only rows scored by this run.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Export scored_explanations (filtered) with a manifest that traces every row."""
    from neuroscribe.export import FORMATS, export_scored
    from neuroscribe.warehouse import open_readonly

    if fmt not in FORMATS:
        raise fail(f"unknown format '{fmt}'; use one of: {', '.join(FORMATS)}")
    with user_errors(), closing(open_readonly(state.warehouse)) as con:
        manifest = export_scored(
            con,
            out_path,
            fmt,  # type: ignore[arg-type]
            subject=subject,
            site=site,
            explainer=explainer,
            simulator=simulator,
            score_kind=score_kind,
            min_score=min_score,
            run_id=run_id,
            force=force,
        )
    out.print(
        f"{manifest.rows} rows -> {out_path} (sha256 {manifest.sha256[:12]}); "
        f"manifest: {out_path}.manifest.json"
    )


@app.command()
def report(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for index.html.")] = Path("report"),
    run_id: Annotated[str | None, typer.Option(help="One run (default: all finished).")] = None,
    max_units: Annotated[int, typer.Option(help="At most this many units.")] = 500,
) -> None:
    """Write a static HTML report: explanations, scores, and windows shaded by true and
    simulated activation."""
    from neuroscribe.report import write_report
    from neuroscribe.warehouse import open_readonly

    with user_errors(), closing(open_readonly(state.warehouse)) as con:
        path = write_report(con, out_dir, run_id, max_units=max_units)
    out.print(f"report: {path.resolve()}")


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
        out.print(f"ingested {name}: {rows}")
    for name in result.already:
        out.print(f"already ingested: {name}")
    for name in result.partial:
        err.print(f"skipped {name}: not complete (a worker still writing, or one that stopped)")
    out.print(
        f"{len(result.ingested)} ingested, {len(result.already)} already there, "
        f"{len(result.partial)} incomplete skipped"
    )
    _where(str(resolve_path(state.warehouse)))


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

    if format not in ("table", "csv", "json"):
        raise fail(f"unknown format '{format}'; use table, csv or json")
    if text and regex:
        raise fail("--text and --regex exclude each other")
    if limit < 1:
        raise fail(f"--limit must be at least 1, not {limit}")
    if not query_text.strip():
        raise fail("the search query is empty")
    mode: searching.Mode = "text" if text else "regex" if regex else "meaning"
    if (mode == "meaning" or backfill) and not state.verbose:  # transformers' own bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    with user_errors():
        if backfill:
            with closing(connect(state.warehouse)) as con:  # migrates an older schema
                rows = searching.backfill_rows(con)
                added = searching.save_embeddings(con, rows)
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
    rows_out = [{c: r[c] for c in columns} for r in found.rows]
    if format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([r[c] for c in columns] for r in rows_out)
    elif format == "json":
        sys.stdout.write(json.dumps(rows_out, default=str, indent=1) + "\n")
    else:
        shown = [c for c in columns if c not in ("sae_id", "unit_key", "explanation_id")]
        from rich.markup import escape

        table = Table(*shown, title=escape(f"{mode} search: {query_text}"))
        for r in rows_out:
            table.add_row(*(escape(_cell(r[c])) for c in shown))
        out.print(table)
        out.print(f"{len(rows_out)} of {found.searched} explanations")


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if isinstance(value, float) else str(value)
