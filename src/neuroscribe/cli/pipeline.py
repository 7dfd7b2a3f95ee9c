"""The commands that run the pipeline: ``run``, ``collect``, ``score``, ``agree`` and ``serve``.

Each checks its input once (``neuroscribe.checks``), before a run is recorded and before Prefect
starts, then runs its Prefect flow (``flows.pipeline``) with progress bars. Their options are
the run config's fields (``neuroscribe.cli.options``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from neuroscribe import progress
from neuroscribe.cli.app import app, err, out, quiet_libraries, state, user_errors, where
from neuroscribe.cli.options import config_options
from neuroscribe.cli.summary import (
    print_agreement_summary,
    print_null_summary,
    print_run_summary,
    silent_explainers,
)
from neuroscribe.config import ConfigError, RunConfig, load_config

SILENT_EXIT = 3
"""Exit status of a run that is stored but in which an explainer produced nothing usable."""

UNIT_SELECTION = ("collect.site", "collect.units", "collect.sae")
"""What finds already collected units in the warehouse (``score`` and ``agree``)."""

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "run": ("subject", "corpus", "collect", "explain", "simulate", "score", "controls", "budget"),
    "collect": ("subject", "corpus", "collect"),
    "score": ("subject", *UNIT_SELECTION, "collect.seed", "simulate", "score", "budget"),
    "agree": ("subject", *UNIT_SELECTION),
}
"""The parts of the run config (sections, or single fields) each command takes as options."""


def _config(overrides: dict[str, Any]) -> RunConfig:
    """The config file, then the command's options (those given) on top."""
    return load_config(state.config, overrides)


@app.command()
@config_options(*STAGE_SECTIONS["run"])
def run(overrides: dict[str, Any]) -> None:
    """Run every stage (collect, explain, simulate, score, agree) and store it all. Exit status
    3: the run is stored, but a configured explainer produced nothing usable (see
    explain.fail_on_silent)."""
    with user_errors():  # the summary too: a reader may hold the file (lock) meanwhile
        cfg = _config(overrides)
        run_id, warehouse, ids = run_stage("run", cfg)
        silent = silent_explainers(warehouse, ids, cfg)
        print_run_summary(warehouse, run_id, ids)
        if cfg.controls.random_model:
            print_null_summary(warehouse, run_id)
    where(warehouse)
    if silent and cfg.explain.fail_on_silent:
        raise typer.Exit(SILENT_EXIT)


@app.command()
@config_options(*STAGE_SECTIONS["collect"])
def collect(
    overrides: dict[str, Any],
    handoff: Annotated[
        Path | None,
        typer.Option(
            help="Work as a worker: write the collection as Parquet into this folder for "
            "`neuroscribe ingest`, without opening the warehouse (and without Prefect)."
        ),
    ] = None,
) -> None:
    """Collect windows, activations, statistics and held-out splits (no annotators)."""
    with user_errors():
        cfg = _config(overrides)
        if handoff is not None:
            path = collect_handoff(cfg, handoff)
            out.print(f"handoff: {escape(str(path.resolve()))}", highlight=False)
            out.print(f"load it with: neuroscribe ingest {escape(str(handoff))}", highlight=False)
            return
        _, warehouse, _ = run_stage("collect", cfg)
    where(warehouse)


@app.command()
@config_options(*STAGE_SECTIONS["score"])
def score(overrides: dict[str, Any]) -> None:
    """Simulate and score the stored explanations of collected units with the configured
    simulators, doing only what is missing."""
    with user_errors():
        run_id, warehouse, ids = run_stage("score", _config(overrides))
        print_run_summary(warehouse, run_id, ids)
    where(warehouse)


@app.command()
@config_options(*STAGE_SECTIONS["agree"])
def agree(overrides: dict[str, Any]) -> None:
    """Agreement between annotators from the stored predictions (no LLM calls)."""
    with user_errors():
        run_id, warehouse, _ = run_stage("agree", _config(overrides))
        print_agreement_summary(warehouse, run_id)
    where(warehouse)


@app.command()
@config_options("schedule")
def serve(overrides: dict[str, Any]) -> None:
    """Serve the pipeline (and stage flows) as Prefect deployments on the config's schedule,
    against the Prefect server at PREFECT_API_URL, until interrupted."""
    with user_errors():
        given = {k.split(".", 1)[1]: v for k, v in overrides.items()}
        if "cron" in given and "interval_seconds" in given:
            raise ConfigError("give --cron or --interval-seconds, not both")
        schedule = load_config(state.config).schedule.model_dump()
        schedule.update(given)
        if "cron" in given:
            schedule["interval_seconds"] = None
        if "interval_seconds" in given:
            schedule["cron"] = None
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
        escape(
            f"serving {', '.join(cfg.schedule.flows)} ({when}, {cfg.schedule.timezone}) against "
            f"{url}; warehouse {warehouse}. Ctrl-C stops."
        ),
        highlight=False,
    )
    deployments.serve_scheduled(served)


def check_input(flows: Sequence[str], cfg: RunConfig) -> str:
    """Every check that can fail on bad input for these flows, once, before a run is recorded
    and before Prefect starts: an unwritable warehouse, a missing corpus or model, a wrong site,
    an unreachable endpoint. Returns the warehouse path."""
    from neuroscribe.checks import check_flows
    from neuroscribe.warehouse import check_writable

    quiet_libraries()
    warehouse = str(check_writable(state.warehouse))  # creates nothing
    check_flows(cfg, flows)
    return warehouse


def collect_handoff(cfg: RunConfig, directory: Path) -> Path:
    """A worker's collection: checked, collected, written as a handoff (no warehouse, no
    Prefect)."""
    from neuroscribe.checks import check_flows
    from neuroscribe.collect.incremental import collect_units
    from neuroscribe.handoff import write_collection
    from neuroscribe.ids import new_run_id

    quiet_libraries()
    check_flows(cfg, ["collect"])
    run_id, started = new_run_id(cfg.config_hash), datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    with progress_bars():
        result = collect_units(cfg)
    path = write_collection(directory, run_id, cfg, result, started)
    out.print(f"collect {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return path


def run_stage(stage: str, cfg: RunConfig) -> tuple[str, str, list[str]]:
    """Check the input, then run one Prefect flow (``run``, ``collect``, ``score`` or ``agree``)
    with progress bars. Returns (run id, warehouse path, the ids the flow worked on)."""
    warehouse = check_input([stage], cfg)
    if not state.verbose:
        # Errors are reported once, by this command; Prefect's own log would repeat them.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    from flows.server import temporary_server
    from neuroscribe.ids import new_run_id

    run_id = new_run_id(cfg.config_hash)
    t0 = time.perf_counter()
    with stopped_by_sigterm(), temporary_server(), progress_bars():
        from flows import pipeline  # Prefect reads its settings (the server's URL) on import

        ids = pipeline.STAGE_FLOWS[stage](cfg, warehouse, run_id, checked=True)
    out.print(f"{stage} {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return run_id, warehouse, ids


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (``timeout``, a scheduler, a container stop) ends the command as Ctrl-C does:
    the run is recorded ``failed`` and the temporary server is stopped on the way out."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def progress_bars() -> Iterator[None]:
    """The stages' progress (``neuroscribe.progress``) on stderr: rich bars with counts and
    the time left on a terminal; otherwise (a log file, a pipe) plain timestamped lines, at least
    one every 30 s per running stage."""
    if not err.is_terminal:

        def write(line: str) -> None:
            err.print(f"{datetime.now():%H:%M:%S} {escape(line)}", highlight=False)

        progress.set_reporter(progress.LogReporter(write))
        try:
            yield
        finally:
            progress.set_reporter(None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as prog:

        @contextmanager
        def report(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
            task_id = prog.add_task(escape(description), total=total)
            try:
                yield lambda n: prog.advance(task_id, n)
            finally:
                prog.update(task_id, completed=prog.tasks[task_id].total or 0)

        progress.set_reporter(report)
        try:
            yield
        finally:
            progress.set_reporter(None)
