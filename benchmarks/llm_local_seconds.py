"""Seconds per unit of the offline default's LLM annotators (SmolLM2-135M-Instruct in process:
the explainer with its samples, and the all-at-once simulator), with their tokens per unit.

Either runs the default config's explain and simulate stages (``explain_units``,
``simulate_units``: every default explainer, best-of-n, every default simulator,
no controls) on ``--units`` planted units shaped as the default collection gives them (32-token
windows: 6 explain, 5 validate, 5 score-top, 5 calibrate + 5 random), or, with ``--warehouse``,
reads the same figures from the ``llm_calls`` of a finished run. The model is loaded before the
clock starts (loading is a one-off, about 30 s the first time). Seconds per unit are the summed
call latencies of one annotator and purpose over the units; the stage wall times are printed
beside them (they include the baselines and the scoring of nothing else).

    OMP_NUM_THREADS=1 python benchmarks/llm_local_seconds.py [--units 2] [--warehouse FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_throughput import planted_units  # noqa: E402

from neuroscribe.config import EMBEDDED_SUBJECT, RunConfig  # noqa: E402
from neuroscribe.explain.units import explain_units  # noqa: E402
from neuroscribe.llm.base import Ledger, LLMCall  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.local import PREFIX_TOKENS  # noqa: E402
from neuroscribe.simulate import simulate_units  # noqa: E402

ROWS = (("explain", "explain"), ("simulate", "validate (best-of-n)"), ("simulate", "score"))


def run_default(n_units: int) -> tuple[list[LLMCall], dict[str, float], RunConfig]:
    """The default config's LLM stages on planted units; the ledger and stage wall times."""
    from neuroscribe.models import load_model

    cfg = RunConfig.model_validate({"score": {"controls": False}})
    load_model(EMBEDDED_SUBJECT, None, cfg.explain.local_dtype)  # before the clock
    units, windows = planted_units(n_units)
    clear_response_cache()
    ledger = Ledger()
    t0 = time.perf_counter()
    explanations = explain_units(units, windows, cfg, ledger)
    t1 = time.perf_counter()
    n_explain_calls = len(ledger.calls)
    simulate_units(explanations, units, windows, cfg, ledger)
    t2 = time.perf_counter()
    calls = ledger.drain()
    # Simulate calls made during explain_units are best-of-n selection on the validate split.
    for i, c in enumerate(calls):
        if c.purpose == "simulate":
            stage = "validate" if i < n_explain_calls else "score"
            calls[i] = c.model_copy(update={"params": {**c.params, "_stage": stage}})
    return calls, {"explain stage": t1 - t0, "simulate stage": t2 - t1}, cfg


def from_warehouse(path: str) -> tuple[list[LLMCall], int, str]:
    """The newest finished run's calls and its number of explained units."""
    import duckdb

    con = duckdb.connect(path, read_only=True)
    row = con.execute(
        "SELECT run_id FROM runs WHERE status = 'finished' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise SystemExit(f"{path}: no finished run")
    run_id = row[0]
    n_units = con.execute(
        "SELECT count(DISTINCT unit_key) FROM explanations WHERE run_id = ?", [run_id]
    ).fetchone()[0]
    rows = con.execute(
        "SELECT annotator, purpose, prompt_tokens, completion_tokens, latency_ms, cache_hit "
        "FROM llm_calls WHERE run_id = ? AND status = 'ok'",
        [run_id],
    ).fetchall()
    calls = [
        LLMCall(
            request_hash="-",
            annotator=a,
            purpose=p,
            prompt_sha=None,
            params={},
            response=None,
            status="ok",
            prompt_tokens=pt,
            completion_tokens=ct,
            latency_ms=ms,
            cache_hit=hit,
        )
        for a, p, pt, ct, ms, hit in rows
    ]
    return calls, int(n_units), run_id


def print_table(calls: list[LLMCall], n_units: int) -> None:
    print(
        f"{'annotator':<36} {'purpose':<22} {'calls/unit':>10} {'s/unit':>8} "
        f"{'prompt tok/unit':>16} {'compl tok/unit':>15}"
    )
    for annotator in sorted({c.annotator for c in calls}):
        for purpose, label in ROWS:
            stage = {"validate (best-of-n)": "validate", "score": "score"}.get(label)
            cs = [
                c
                for c in calls
                if c.annotator == annotator
                and c.purpose == purpose
                and not c.cache_hit
                and (stage is None or c.params.get("_stage", "score") == stage)
            ]
            if not cs:
                continue
            s = sum(c.latency_ms for c in cs) / 1000
            pt = sum(c.prompt_tokens for c in cs)
            ct = sum(c.completion_tokens for c in cs)
            print(
                f"{annotator:<36} {label:<22} {len(cs) / n_units:>10.1f} "
                f"{s / n_units:>8.2f} {pt / n_units:>16.0f} {ct / n_units:>15.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--warehouse", help="read a finished run's llm_calls instead")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    if args.warehouse:
        calls, n_units, run_id = from_warehouse(args.warehouse)
        print(f"run {run_id}: {n_units} units, from llm_calls")
        print_table(calls, n_units)
        return
    calls, walls, cfg = run_default(args.units)
    print(
        f"{args.units} planted units, default config: explainers {cfg.explain.explainers} "
        f"(samples={cfg.explain.samples}, select_with={cfg.explain.select_with}), "
        f"simulators {cfg.simulate.simulators}"
    )
    print_table(calls, args.units)
    for stage, seconds in walls.items():
        print(f"{stage}: {seconds / args.units:.2f} s/unit (wall)")
    for (name, kind), n in sorted(PREFIX_TOKENS.items()):
        print(
            f"{name}: prompt tokens {kind} by prefix KV reuse: {n / args.units:.0f}/unit"
            if kind == "reused"
            else f"{name}: prompt tokens run through the model: {n / args.units:.0f}/unit"
        )


if __name__ == "__main__":
    main()
