"""The pipeline flow: collect -> explain -> simulate -> score -> agree, storing after each stage;
then, with ``controls.random_model``, the same pipeline on a re-initialised copy of the subject.

Thin by design: each task loads its inputs from the warehouse, calls one stage package's entry
point (``collect``, ``explain``, ``simulate``, ``score``, ``agree``), writes the records it
returns, and passes ids to the next task. A run is marked ``finished`` only after the last stage;
any exception marks it ``failed`` with the error and is raised again.

With ``[engine] kind = "dask"``, explain, simulate and score run on Dask workers instead
(``flows.engine``); the flow's process still writes every row.

Each flow checks its input (``neuroscribe.checks``) unless its caller already did
(``checked=True``: the CLI checks once, before Prefect starts; a scheduled run checks here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.exceptions import MissingContextError

from flows import budget, engine, shards
from flows.cluster import one_cluster
from flows.retry import RETRY
from neuroscribe import search
from neuroscribe.agree import agree_units
from neuroscribe.checks import check_flows, preflight
from neuroscribe.collect.incremental import collect_missing, missing_config, unit_selector
from neuroscribe.config import RunConfig
from neuroscribe.errors import BadInput
from neuroscribe.explain.units import explain_units
from neuroscribe.ids import new_run_id
from neuroscribe.llm.base import Ledger
from neuroscribe.models import resolve_source, weights_hash
from neuroscribe.null_model import NullCopy, null_config, null_copy
from neuroscribe.progress import step
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score import FUZZ_KINDS, score_units
from neuroscribe.simulate import fuzz_units, simulate_units
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import calls, collection, connect, nulls, reads, rows, runs
from neuroscribe.warehouse.reads import ControlComparison

LLM_TAG = "llm"
"""Tag of the tasks that call annotators (explain, simulate). A Prefect tag concurrency limit
(`prefect concurrency-limit create llm 1`) bounds how many of them run at once across flow runs;
the slot is taken once per task, not per LLM call."""



def _stage(warehouse: str, run_id: str, name: str) -> None:
    with closing(connect(warehouse)) as con:
        runs.set_stage(con, run_id, name)


LEDGER_FLUSH_EVERY = 32
LEDGER_FLUSH_SECONDS = 1.0
"""LLM calls reach ``llm_calls`` in batches as they are made: every this many calls, or when
the oldest unwritten call is this old. A run killed mid-stage loses only the calls in flight and
those of the last second; the next run answers every stored call from the cache."""


def _ledger(con: Any, run_id: str) -> Ledger:
    """A ledger writing its calls through ``con`` as they come (use it as a context manager);
    each flush is a heartbeat of the run too."""

    def sink(batch: list[Any]) -> None:
        calls.save_llm_calls(con, run_id, batch)
        runs.beat(con, run_id)

    return Ledger(
        sink,
        flush_every=LEDGER_FLUSH_EVERY,
        flush_seconds=LEDGER_FLUSH_SECONDS,
    )


@task(name="collect", cache_policy=NONE, **RETRY)
def collect_task(cfg: RunConfig, warehouse: str, run_id: str) -> list[str]:
    _stage(warehouse, run_id, "collect")

    def stored(keys: list[str]) -> dict[str, tuple[str | None, str, list[str]]]:
        with closing(connect(warehouse)) as con:  # not held while the forward pass runs
            return collection.unit_collections(con, keys)

    if cfg.engine.kind == "dask":  # one shard of the units per worker (flows.shards)
        keys, todo = missing_config(cfg, stored)
        if todo is not None:
            shards.collect_on_workers(todo, warehouse, run_id)
        result = None
    else:
        keys, result = collect_missing(cfg, stored)
    if result is not None:
        with closing(connect(warehouse)) as con:
            collection.save_collection(
                con, run_id, result.subject, result.corpus_id, result.windows, result.tables
            )
    with closing(connect(warehouse)) as con, rows.transaction(con):
        rows.adopt(con, run_id, "units", "unit_key", keys)  # left by a run that did not finish
        rows.adopt(con, run_id, "unit_windows", "unit_key", keys)
    return keys


@task(name="explain", cache_policy=NONE, tags=[LLM_TAG], **RETRY)
def explain_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str],
    work: RunConfig | None = None, only: list[str] | None = None,
) -> list[str]:
    """``work``: the config to explain with instead (a phase of ``flows.budget``), ``only``: the
    unit keys to explain; rows carry ``cfg``'s hash either way."""
    _stage(warehouse, run_id, "explain")
    with closing(connect(warehouse)) as con, step("explain: read the units", len(unit_keys)):
        units = collection.load_units(con, unit_keys)
        windows = collection.load_windows(con, (w.window_id for u in units for w in u.windows))
        calls.prime_cache_from_warehouse(con)  # a call made before (by any run) is not made again
    with closing(connect(warehouse)) as calls_con, _ledger(calls_con, run_id) as ledger:
        explanations = explain_units(units, windows, work or cfg, ledger, only)
    embeddings = search.embedding_rows(explanations)  # MiniLM vectors for `neuroscribe search`
    with closing(connect(warehouse)) as con, step("explain: write", len(explanations)):
        annotated.save_explanations(con, run_id, cfg.config_hash, explanations)
        search.save_embeddings(con, embeddings)
    return [e.explanation_id for e in explanations]


@task(name="simulate", cache_policy=NONE, tags=[LLM_TAG], **RETRY)
def simulate_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> int:
    _stage(warehouse, run_id, "simulate")
    read = step("simulate: read units, explanations", len(unit_keys))
    with closing(connect(warehouse)) as con, read:
        units = collection.load_units(con, unit_keys)
        windows = collection.load_windows(con, (w.window_id for u in units for w in u.windows))
        explanations = annotated.load_explanations(con, explanation_ids)
        simulated = annotated.load_simulations(con, explanation_ids)
        done = frozenset((s.explanation_id, s.simulator) for s in simulated)
        fuzzed = frozenset(  # fuzz scores are made here, where the simulators judge the items
            (s.explanation_id, s.simulator)
            for s in annotated.load_scores(con, explanation_ids)
            if s.kind in FUZZ_KINDS
        )
        calls.prime_cache_from_warehouse(con)
        with rows.transaction(con):  # what this run reuses of a run that did not finish
            rows.adopt(con, run_id, "simulations", "explanation_id", explanation_ids)
            rows.adopt(con, run_id, "scores", "explanation_id", explanation_ids)
    with closing(connect(warehouse)) as calls_con, _ledger(calls_con, run_id) as ledger:
        simulations = simulate_units(explanations, units, windows, cfg, ledger, done)
        fuzz = fuzz_units(explanations, units, windows, cfg, ledger, fuzzed)
    with closing(connect(warehouse)) as con, step("simulate: write", len(simulations)):
        annotated.save_simulations(con, run_id, simulations)
        annotated.save_scores(con, run_id, fuzz)
    return len(simulations)


@task(name="score", cache_policy=NONE, **RETRY)
def score_task(
    cfg: RunConfig, warehouse: str, run_id: str, unit_keys: list[str], explanation_ids: list[str]
) -> int:
    _stage(warehouse, run_id, "score")
    with closing(connect(warehouse)) as con, step("score: read units, simulations", len(unit_keys)):
        units = collection.load_units(con, unit_keys)
        explanations = annotated.load_explanations(con, explanation_ids)
        simulations = annotated.load_simulations(con, [e.explanation_id for e in explanations])
    scores = score_units(explanations, units, simulations, cfg)
    with closing(connect(warehouse)) as con, step("score: write", len(scores)):
        annotated.save_scores(con, run_id, scores)
    return len(scores)


@task(name="agree", cache_policy=NONE, **RETRY)
def agree_task(cfg: RunConfig, warehouse: str, run_id: str, explanation_ids: list[str]) -> int:
    _stage(warehouse, run_id, "agree")
    read = step("agree: read the simulations", len(explanation_ids))
    with closing(connect(warehouse)) as con, read:
        explanations = annotated.load_explanations(con, explanation_ids)
        ids = [e.explanation_id for e in explanations]
        simulations = annotated.load_simulations(con, ids)
        scores = annotated.load_scores(con, ids)
    agreements = agree_units(explanations, simulations, scores)
    with closing(connect(warehouse)) as con:
        annotated.save_agreements(con, run_id, agreements)
    return len(agreements)


STAGES = budget.Stages(explain_task, simulate_task, score_task)  # flows.budget's phases


def _reason(e: BaseException) -> str:
    """What stopped a run, for ``runs.error`` (a signal's exception carries no message)."""
    signum = getattr(e, "signal", None)  # Prefect's TerminationSignal (SIGTERM)
    return str(e) or (f"stopped by signal {signum}" if signum else "interrupted")


def _recorded(
    cfg: RunConfig, warehouse: str, run_id: str, body: Callable[[], list[str]]
) -> list[str]:
    """Record the run (with its process, for the heartbeat), run ``body``, and mark the run
    finished, or failed with the error, whatever the error: recording the end retries while
    another process holds the file (``runs.record_end``). Logs the rows it took over from runs
    that did not finish. Returns what ``body`` returns: the ids the run worked on."""
    with closing(connect(warehouse)) as con:
        runs.start_run(con, run_id, cfg)
    try:
        ids = body()
    except BaseException as e:
        runs.record_end(warehouse, run_id, "failed", f"{type(e).__name__}: {_reason(e)}")
        raise
    runs.record_end(warehouse, run_id, "finished")
    _log_adoptions(warehouse, run_id)
    return ids


def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:  # a body run outside a flow (tests)
        return logging.getLogger(__name__)


def _log_adoptions(warehouse: str, run_id: str) -> None:
    """Say whose unfinished work the run took over (e.g. an abandoned run's). The run is
    already recorded, so a failure to read is logged, not raised."""
    try:
        with closing(connect(warehouse)) as con:
            for adoption in runs.adoptions(con, run_id):
                _logger().info(adoption.sentence())
    except Exception as e:  # the log is a view of the warehouse, never the record
        _logger().warning("could not read the rows this run took over: %s", e)


def _collected_units(cfg: RunConfig, warehouse: str) -> list[str]:
    """The config's units as already collected in the warehouse; an error if there are none."""
    subject, sites, sae_id = unit_selector(cfg)
    with closing(connect(warehouse)) as con:
        indices = None if cfg.every_unit else cfg.unit_indices
        keys = collection.find_unit_keys(con, subject, sites, indices, sae_id)
    if not keys:
        raise BadInput(
            f"no collected units of {cfg.subject.model} at {cfg.collect.site} in {warehouse}; "
            "run `neuroscribe collect` (or `neuroscribe run`) first"
        )
    return keys


@task(name="random model", cache_policy=NONE, **RETRY)
def null_copy_task(cfg: RunConfig, warehouse: str, run_id: str) -> NullCopy:
    _stage(warehouse, run_id, "random model")
    copy = null_copy(cfg)
    preflight(null_config(cfg, copy), annotators=False)  # the copy's site and units
    return copy


@task(name="link random model", cache_policy=NONE, **RETRY)
def null_link_task(
    warehouse: str, run_id: str, null_run: str, copy: NullCopy, ids: list[str], null_ids: list[str]
) -> None:
    link = {
        "trained_run_id": run_id, "null_run_id": null_run, "subject": copy.subject,
        "subject_weights_hash": copy.subject_weights_hash, "null_model": copy.folder,
        "null_weights_hash": weights_hash(resolve_source(copy.folder)),
        "method": copy.method, "seed": copy.seed,
    }
    with closing(connect(warehouse)) as con:
        nulls.save_null_model(con, link, ids, null_ids)


def _random_model(cfg: RunConfig, warehouse: str, run_id: str, ids: list[str]) -> None:
    """The random-model null (``controls.random_model``): the seeded re-initialised copy, the
    whole pipeline on it (a subflow, recorded in ``runs``), and its link to this run."""
    copy = null_copy_task(cfg, warehouse, run_id)
    null_cfg = null_config(cfg, copy)
    null_run = new_run_id(null_cfg.config_hash)
    null_ids = run_flow(null_cfg, warehouse, null_run, checked=True)
    null_link_task(warehouse, run_id, null_run, copy, ids, null_ids)


@flow(name="neuroscribe-run", validate_parameters=False)
def run_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Every stage, end to end, then (``controls.random_model``) the random-model null. Returns
    the ids of the run's explanations."""
    if not checked:
        check_flows(cfg, ["run"])

    def body() -> list[str]:
        with one_cluster(cfg) as work:  # Dask: one local cluster for every stage of the run
            unit_keys = collect_task(work, warehouse, run_id)
            if work.engine.kind == "dask":  # explain, simulate and score on Dask workers
                explanation_ids = engine.fan_out(work, warehouse, run_id, unit_keys)
            elif work.budget.escalate:  # cheap annotators first, then the escalated units
                explanation_ids = budget.escalating(work, warehouse, run_id, unit_keys, STAGES)
            else:
                explanation_ids = explain_task(work, warehouse, run_id, unit_keys)
                simulate_task(work, warehouse, run_id, unit_keys, explanation_ids)
                score_task(work, warehouse, run_id, unit_keys, explanation_ids)
            agree_task(work, warehouse, run_id, explanation_ids)
        if cfg.controls.random_model:  # a run of its own (and its own cluster)
            _random_model(cfg, warehouse, run_id, explanation_ids)
        return explanation_ids

    ids = _recorded(cfg, warehouse, run_id, body)
    _summary_artifact(cfg, warehouse, run_id, ids)
    return ids


@flow(name="neuroscribe-collect", validate_parameters=False)
def collect_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Collection alone: windows, activations, statistics and held-out splits. Returns the
    unit keys."""
    if not checked:
        check_flows(cfg, ["collect"])
    return _recorded(cfg, warehouse, run_id, lambda: collect_task(cfg, warehouse, run_id))


@flow(name="neuroscribe-score", validate_parameters=False)
def score_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Simulate and score the current explanations of already collected units with the
    configured simulators, doing only what is missing (a new simulator scores everything that
    exists; an old one nothing new)."""
    if not checked:
        check_flows(cfg, ["score"])

    def body() -> list[str]:
        unit_keys = _collected_units(cfg, warehouse)
        with closing(connect(warehouse)) as con:
            ids = annotated.current_explanation_ids(con, unit_keys)
        if cfg.engine.kind == "dask":
            return engine.fan_out(cfg, warehouse, run_id, unit_keys, ids)
        if cfg.budget.escalate:  # escalated simulators on escalated units only
            return budget.rescore(cfg, warehouse, run_id, unit_keys, ids, STAGES)
        simulate_task(cfg, warehouse, run_id, unit_keys, ids)
        score_task(cfg, warehouse, run_id, unit_keys, ids)
        return ids

    ids = _recorded(cfg, warehouse, run_id, body)
    _summary_artifact(cfg, warehouse, run_id, ids)
    return ids


@flow(name="neuroscribe-agree", validate_parameters=False)
def agree_flow(cfg: RunConfig, warehouse: str, run_id: str, checked: bool = False) -> list[str]:
    """Agreement statistics over everything stored for the config's units (no LLM calls)."""

    def body() -> list[str]:
        unit_keys = _collected_units(cfg, warehouse)
        with closing(connect(warehouse)) as con:
            ids = annotated.current_explanation_ids(con, unit_keys)
        agree_task(cfg, warehouse, run_id, ids)
        return ids

    return _recorded(cfg, warehouse, run_id, body)


STAGE_FLOWS = {"run": run_flow, "collect": collect_flow, "score": score_flow, "agree": agree_flow}
"""The flow of each command (and of each deployment that ``neuroscribe serve`` starts)."""


def summary_markdown(run_id: str, config_hash: str, comparisons: list[ControlComparison]) -> str:
    """The run's summary for Prefect's UI: per annotator, units, mean headline score and the
    share of units beating both controls (see ``score.controls``)."""
    lines = [f"# neuroscribe run `{run_id}`", "", f"config hash `{config_hash}`", ""]
    if not comparisons:
        lines.append(
            "No annotator compared with the controls (that needs the `baseline/ngram` explainer,"
            " `score.controls` and scored explanations)."
        )
        return "\n".join(lines) + "\n"
    lines += [
        "| explainer | simulator | units | mean score | beats both controls |",
        "|---|---|---:|---:|---:|",
    ]
    for c in comparisons:
        mean = "n/a" if c.mean_score is None else f"{c.mean_score:+.3f}"
        lines.append(
            f"| {c.explainer} | {c.simulator} | {c.n_units} | {mean} |"
            f" {c.n_beats_both}/{c.n_units} ({c.share_beats_both:.0%}) |"
        )
    return "\n".join(lines) + "\n"


def _summary_artifact(cfg: RunConfig, warehouse: str, run_id: str, ids: list[str]) -> None:
    """One markdown artifact per run (key ``neuroscribe-summary``). The run is already recorded
    as finished, so a failure to publish it is logged, not raised."""
    with closing(connect(warehouse)) as con:
        comparisons = reads.control_comparisons(con, ids, [HEADLINE_SCORE])
    try:
        create_markdown_artifact(
            summary_markdown(run_id, cfg.config_hash, comparisons),
            key="neuroscribe-summary",
            description=f"neuroscribe run {run_id}",
        )
    except Exception as e:  # the artifact is a view of the warehouse, never the record
        get_run_logger().warning("could not publish the run summary artifact: %s", e)
