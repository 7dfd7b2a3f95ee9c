"""CPU-seconds and seconds per unit of the offline default's LLM annotators (SmolLM2-135M-Instruct
in process: the explainer with its samples, the all-at-once simulator, the fuzz judge), with their
tokens per unit.

Runs the default config's explain, simulate and fuzz stages (``explain_units``,
``simulate_units``, ``fuzz_units``: every default explainer, best-of-n, every default simulator,
the shuffled control) on ``--units`` planted units shaped as the default collection gives them
(32-token windows: 6 explain, 5 validate, 5 score-top, 5 calibrate + 5 random), or, with
``--warehouse``, reads the figures from the ``llm_calls`` of a finished run. The model is loaded,
and one unit is run, before the clock starts (one-off costs). CPU-seconds are the process's own
(all its threads, ``time.process_time``); the per-annotator rows sum the calls' latencies (a
batched call's latency is its share of its batch's time).

``--dtypes float32,int8`` runs the stages once per ``local_dtype`` (explainer, simulator and fuzz
judge alike) in one process on the same units and prints each one's CPU-seconds per unit, their
ratio, and each unit's best headline score (the local simulator's ``corr_top_random`` of the
explanation each explainer kept) under both, with the shuffled control's beside it.

``--compare`` runs the stages twice in one process on the same units: first one prompt per
forward pass (``[annotators."local/..."] concurrency = 1``), then batched (``--batch``, default
the backend's), and prints both, their ratio, and how far the outputs differ (explanation texts,
predictions, fuzz confidences, every score). ``--dump FILE`` writes one run's outputs and figures
as JSON; ``--against FILE`` compares this run with such a dump (e.g. one made by another checkout
of neuroscribe: ``PYTHONPATH=/other/src python benchmarks/llm_local_seconds.py --dump old.json``).

    OMP_NUM_THREADS=1 python benchmarks/llm_local_seconds.py [--units 8] [--batch N] [--compare]
        [--dtypes float32,int8] [--dump FILE] [--against FILE] [--warehouse FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_throughput import planted_units  # noqa: E402

from neuroscribe.config import EMBEDDED_SUBJECT, AnnotatorConfig, RunConfig  # noqa: E402
from neuroscribe.explain.units import explain_units  # noqa: E402
from neuroscribe.llm.base import Ledger, LLMCall  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.local import PREFIX_TOKENS  # noqa: E402
from neuroscribe.registry import HEADLINE_SCORE  # noqa: E402
from neuroscribe.score.controls import SHUFFLED_CONTROL  # noqa: E402
from neuroscribe.score.score import score_explanation  # noqa: E402
from neuroscribe.simulate import fuzz_units, simulate_units  # noqa: E402

LOCAL = f"local/{EMBEDDED_SUBJECT}"
ROWS = (
    ("explain", "explain"),
    ("simulate", "validate (best-of-n)"),
    ("simulate", "score"),
    ("fuzz", "fuzz"),
)


@dataclass
class Result:
    calls: list[LLMCall]
    stages: dict[str, tuple[float, float]]
    """Stage -> (wall seconds, CPU-seconds of this process)."""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the annotators produced, keyed by unit and annotator (for comparisons)."""


def config(batch: int | None, dtype: str = "float32") -> RunConfig:
    cfg = RunConfig()
    cfg = cfg.model_copy(
        update={
            "explain": cfg.explain.model_copy(update={"local_dtype": dtype}),
            "simulate": cfg.simulate.model_copy(update={"local_dtype": dtype}),
        }
    )
    if batch is not None:
        annotators = {LOCAL: AnnotatorConfig(concurrency=batch)}
        cfg = cfg.model_copy(update={"annotators": annotators})
    return cfg


def measure(n_units: int, batch: int | None, dtype: str = "float32") -> Result:
    """The default config's LLM stages on planted units (``batch``: prompts per batch of the
    local annotator; None: its default)."""
    cfg = config(batch, dtype)
    units, windows = planted_units(n_units)
    clear_response_cache()
    ledger = Ledger()
    stages: dict[str, tuple[float, float]] = {}
    t, c = time.perf_counter(), time.process_time()
    explanations = explain_units(units, windows, cfg, ledger)
    n_explain_calls = len(ledger.calls)
    stages["explain"] = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    sims = simulate_units(explanations, units, windows, cfg, ledger)
    stages["simulate"] = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    fuzz = fuzz_units(explanations, units, windows, cfg, ledger)
    stages["fuzz"] = (time.perf_counter() - t, time.process_time() - c)
    calls = ledger.drain()
    # Simulate calls made during explain_units are best-of-n selection on the validate split.
    for i, call in enumerate(calls):
        if call.purpose == "simulate":
            stage = "validate" if i < n_explain_calls else "score"
            calls[i] = call.model_copy(update={"params": {**call.params, "_stage": stage}})
    return Result(calls, stages, outputs(explanations, sims, fuzz, units, cfg))


def outputs(explanations: list, sims: list, fuzz: list, units: list, cfg: RunConfig) -> dict:
    """Explanation texts, local predictions and every score of the local simulator, keyed by
    unit, explainer and sample (ids differ when texts do)."""
    by_id = {e.explanation_id: e for e in explanations}
    unit_of = {u.unit.key: u for u in units}

    def key(explanation_id: str, *rest: str) -> str:
        e = by_id[explanation_id]
        return "|".join([e.unit_key, e.explainer, str(e.sample_index), *rest])

    texts = {key(e.explanation_id): e.text for e in explanations}
    preds = {
        key(s.explanation_id, s.window_id): list(s.predictions)
        for s in sims
        if s.simulator == LOCAL
    }
    scores = {key(s.explanation_id, s.kind): s.value for s in fuzz if s.simulator == LOCAL}
    for e in explanations:
        mine = [s for s in sims if s.explanation_id == e.explanation_id and s.simulator == LOCAL]
        if mine:
            for s in score_explanation(
                e.explanation_id, LOCAL, unit_of[e.unit_key], mine, cfg.score, cfg.collect.seed
            ):
                scores[key(e.explanation_id, s.kind)] = s.value
    return {"texts": texts, "predictions": preds, "scores": scores}


def best_scores(out: dict) -> dict[str, dict[str, float]]:
    """Unit -> explainer -> the local simulator's headline score of the explanation kept."""
    best: dict[str, dict[str, float]] = {}
    for k, v in out["scores"].items():
        unit, explainer, _sample, kind = k.split("|")
        if kind == HEADLINE_SCORE and v is not None:
            row = best.setdefault(unit, {})
            row[explainer] = max(v, row.get(explainer, float("-inf")))
    return best


def score_lines(a: dict, b: dict, label_a: str, label_b: str) -> list[str]:
    """Per explainer, the mean headline score over the units both runs scored, and each unit's
    best explainer's score under both."""
    ba, bb = best_scores(a), best_scores(b)
    units = sorted(set(ba) & set(bb))
    lines = []
    for explainer in sorted({e for u in units for e in ba[u]}):
        both = [u for u in units if explainer in ba[u] and explainer in bb[u]]
        if both:
            ma = sum(ba[u][explainer] for u in both) / len(both)
            mb = sum(bb[u][explainer] for u in both) / len(both)
            lines.append(f"{explainer}: mean {HEADLINE_SCORE} over {len(both)} units "
                         f"{label_a} {ma:.3f}, {label_b} {mb:.3f}")
    shuffled = {SHUFFLED_CONTROL}
    for u in units:
        xa = max((v for e, v in ba[u].items() if e not in shuffled), default=float("nan"))
        xb = max((v for e, v in bb[u].items() if e not in shuffled), default=float("nan"))
        lines.append(f"unit {u}: best {label_a} {xa:.3f}, {label_b} {xb:.3f} ({xb - xa:+.3f})")
    return lines


def differences(a: dict, b: dict) -> list[str]:
    """How the outputs of two runs differ, one line per kind of output."""
    lines = []
    ta, tb = a["texts"], b["texts"]
    same = sum(ta.get(k) == tb.get(k) for k in ta)
    lines.append(f"explanation texts: {same} of {len(ta)} identical")
    pa, pb = a["predictions"], b["predictions"]
    common = [k for k in pa if k in pb]
    diff = max((abs(x - y) for k in common for x, y in zip(pa[k], pb[k], strict=True)), default=0.0)
    lines.append(
        f"local predictions: {len(common)} windows in both (of {len(pa)}, {len(pb)}), "
        f"max |difference| {diff:.2e} (0-10 scale)"
    )
    sa, sb = a["scores"], b["scores"]
    both = [k for k in sa if k in sb and sa[k] is not None and sb[k] is not None]
    sdiff = max((abs(sa[k] - sb[k]) for k in both), default=0.0)
    nulls = sum((sa[k] is None) != (sb.get(k) is None) for k in sa if k in sb)
    lines.append(
        f"local scores: {len(both)} in both, max |difference| {sdiff:.2e}; "
        f"defined in one run only: {nulls}"
    )
    if both:
        mean_a = sum(sa[k] for k in both) / len(both)
        mean_b = sum(sb[k] for k in both) / len(both)
        lines.append(f"mean of those scores: {mean_a:.4f} vs {mean_b:.4f}")
    return lines


def run_default(n_units: int) -> tuple[list[LLMCall], dict[str, float], RunConfig]:
    """The default config's LLM stages on planted units: the ledger and stage wall times."""
    warm_up()
    r = measure(n_units, None)
    return r.calls, {s: wall for s, (wall, _) in r.stages.items()}, config(None)


def warm_up(dtypes: list[str] | None = None) -> None:
    """Load the model and run one unit, per dtype (not timed)."""
    from neuroscribe.models import load_model

    for dtype in dtypes or [RunConfig().explain.local_dtype]:
        load_model(EMBEDDED_SUBJECT, None, dtype)
        measure(1, None, dtype)


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
        f"{'annotator':<30} {'purpose':<22} {'calls/unit':>10} {'s/unit':>8} "
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
                f"{annotator:<30} {label:<22} {len(cs) / n_units:>10.1f} "
                f"{s / n_units:>8.2f} {pt / n_units:>16.0f} {ct / n_units:>15.0f}"
            )


def print_stages(label: str, r: Result, n_units: int) -> float:
    parts = [
        f"{stage} {cpu / n_units:.2f} CPU-s ({wall / n_units:.2f} s)"
        for stage, (wall, cpu) in r.stages.items()
    ]
    cpu = sum(c for _, c in r.stages.values())
    wall = sum(w for w, _ in r.stages.values())
    print(
        f"{label}: {cpu / n_units:.2f} CPU-s/unit, {wall / n_units:.2f} s/unit wall "
        f"[{', '.join(parts)}]"
    )
    return cpu / n_units


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--batch", type=int, default=None, help="prompts per batch (local)")
    parser.add_argument("--compare", action="store_true", help="batch 1, then --batch")
    parser.add_argument("--dump", help="write this run's outputs and figures as JSON")
    parser.add_argument("--against", help="compare with a --dump of another run")
    parser.add_argument("--warehouse", help="read a finished run's llm_calls instead")
    parser.add_argument("--dtypes", help="e.g. float32,int8: one run per local_dtype")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    if args.warehouse:
        calls, n_units, run_id = from_warehouse(args.warehouse)
        print(f"run {run_id}: {n_units} units, from llm_calls")
        print_table(calls, n_units)
        return
    n = args.units
    cfg = config(None)
    print(
        f"{n} planted units, default config: explainers {cfg.explain.explainers} "
        f"(samples={cfg.explain.samples}, select_with={cfg.explain.select_with}), "
        f"simulators {cfg.simulate.simulators}, fuzz={cfg.score.fuzz}, "
        f"controls={cfg.score.controls}"
    )
    dtypes = args.dtypes.split(",") if args.dtypes else []
    warm_up(dtypes)
    PREFIX_TOKENS.clear()
    results = []
    for dtype in dtypes[:-1]:
        results.append((dtype, measure(n, args.batch, dtype)))
    if args.compare:
        results.append(("batch 1", measure(n, 1)))
    last = dtypes[-1] if dtypes else "float32"
    label = last if dtypes else f"batch {args.batch or 'default'}"
    results.append((label, measure(n, args.batch, last)))
    for label, r in results:
        print(f"--- {label}")
        print_table(r.calls, n)
    print("---")
    cpus = [print_stages(label, r, n) for label, r in results]
    if len(dtypes) == 2:
        (la, ra), (lb, rb) = results
        print(f"CPU-seconds per unit, {la} / {lb}: {cpus[0] / cpus[1]:.2f}x")
        for line in score_lines(ra.outputs, rb.outputs, la, lb):
            print(line)
    elif len(cpus) == 2:
        print(f"CPU-seconds per unit, batch 1 / batched: {cpus[0] / cpus[1]:.2f}x")
        for line in differences(results[0][1].outputs, results[1][1].outputs):
            print(f"batch 1 vs batched: {line}")
    final = results[-1][1]
    if args.against:
        other = json.loads(Path(args.against).read_text())
        print(
            f"{args.against}: {other['cpu_per_unit']:.2f} CPU-s/unit "
            f"({other['wall_per_unit']:.2f} s wall), this run {cpus[-1]:.2f}: "
            f"{other['cpu_per_unit'] / cpus[-1]:.2f}x"
        )
        for line in differences(other["outputs"], final.outputs):
            print(f"{args.against} vs this run: {line}")
    if args.dump:
        wall = sum(w for w, _ in final.stages.values()) / n
        Path(args.dump).write_text(
            json.dumps(
                {
                    "cpu_per_unit": cpus[-1],
                    "wall_per_unit": wall,
                    "stages": final.stages,
                    "outputs": final.outputs,
                }
            )
        )


if __name__ == "__main__":
    main()
