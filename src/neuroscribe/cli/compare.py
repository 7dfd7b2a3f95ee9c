"""The ``compare`` command: two or more subjects through the same corpus, unit by unit."""

from __future__ import annotations

import math
import os
import time
from contextlib import closing
from typing import Annotated, Any

import typer

from neuroscribe.cli.app import app, out, quiet_libraries, state, user_errors, where
from neuroscribe.cli.options import config_options
from neuroscribe.cli.output import check_format, emit
from neuroscribe.cli.pipeline import progress_bars, stopped_by_sigterm
from neuroscribe.config import load_config

COMPARE_OPTIONS = (
    "subject.gguf_file",
    "subject.dtype",
    "corpus",
    "collect.site",
    "collect.window_tokens",
    "collect.max_windows",
    "collect.batch_size",
    "compare.threshold",
    "compare.cka_budget_mb",
    "compare.max_stat_tokens",
    "compare.similarity",
    "compare.score_change",
    "compare.explain",
    "explain.explainers",
    "simulate.simulators",
)
"""The parts of the run config ``compare`` takes as options; the subjects come from --model."""

TOP_CHANGES = 10
"""Rows of ``model_diff`` printed after a comparison."""


@app.command()
@config_options(*COMPARE_OPTIONS)
def compare(
    overrides: dict[str, Any],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A subject to compare (repeat: --model A --model B): hub name, local folder, "
            "GGUF file or the embedded alias. Two or more, sharing a tokenizer. "
            "(compare.models)",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Compare subjects unit by unit on one corpus: activation correlations between every unit
    of A and of B at each site (one streaming pass per subject), best partners and a one-to-one
    matching, universality and linear CKA per site pair; the units without a partner (new,
    lost) and partnered units whose explanations differ (changed), the top of them explained and
    scored by the pipeline (views universality and model_diff)."""
    fmt = check_format(format)
    with user_errors():
        if model:
            overrides["compare.models"] = list(model)
        cfg = load_config(state.config, overrides)
        run_id, warehouse = _run(cfg)
        rows, changes = _read(warehouse, run_id)
    _print(rows, changes, fmt)
    if fmt == "table":
        where(warehouse)


def _run(cfg: Any) -> tuple[str, str]:
    """Check the input (nothing is recorded before), then run the comparison flow."""
    from neuroscribe.compare.subjects import check_compare
    from neuroscribe.ids import new_run_id
    from neuroscribe.warehouse import check_writable

    quiet_libraries()
    warehouse = str(check_writable(state.warehouse))
    check_compare(cfg)
    if not state.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    from flows.server import temporary_server

    run_id = new_run_id(cfg.config_hash)
    t0 = time.perf_counter()
    with stopped_by_sigterm(), temporary_server(), progress_bars():
        from flows import compare as compare_flows

        compare_flows.compare_flow(cfg, warehouse, run_id, checked=True)
    out.print(f"compare {run_id} finished in {time.perf_counter() - t0:.0f} s")
    return run_id, warehouse


def _read(warehouse: str, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from neuroscribe.warehouse import open_readonly
    from neuroscribe.warehouse.comparisons import model_diff_rows, universality_rows

    with closing(open_readonly(warehouse)) as con:
        return universality_rows(con, run_id), model_diff_rows(con, run_id, TOP_CHANGES)


def _number(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _print(rows: list[dict[str, Any]], changes: list[dict[str, Any]], fmt: Any) -> None:
    columns = ["subject_a", "subject_b", "site", "units_a", "units_b", "share_a_matched",
               "share_b_matched", "mean_r_a", "cka"]
    table = [
        [r["subject_a_id"], r["subject_b_id"], r["site_a"], r["n_a"], r["n_b"],
         _number(r["share_a_matched"]), _number(r["share_b_matched"]), _number(r["mean_r_a"]),
         _number(r["cka"], 6)]
        for r in rows
    ]
    threshold = rows[0]["threshold"] if rows else None
    emit(columns, table, fmt, title="universality", right=columns[3:],
         footer=f"matched: best partner r >= {threshold}")
    if fmt != "table":
        return
    diff_columns = ["change", "subject", "site", "unit", "partner", "partner_r", "size",
                    "explanation", "partner_explanation"]
    emit(
        diff_columns,
        [[c["change"], c["subject_id"], c["site"], c["unit_index"], c["partner_index"],
          _number(c["partner_r"]), _number(c["change_size"]), c["explanation"],
          c["partner_explanation"]] for c in changes],
        fmt,
        title=f"model_diff (top {TOP_CHANGES})",
        right=["unit", "partner", "partner_r", "size"],
        null="",
        footer=None if changes else "no unit new, lost or changed",
    )
