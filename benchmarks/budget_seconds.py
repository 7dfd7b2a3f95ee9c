"""CPU-seconds per unit of the offline default with and without a budget, on the same units, and
the scores each way.

Collects the default's units once (``neuroscribe collect``: SmolLM2-135M-Instruct, layer 15,
stdlib docstrings), copies the warehouse twice, and runs ``neuroscribe run`` on each copy: once
as configured (every annotator on every unit), once with ``--escalate`` (default ``local/*``)
and ``--escalate-below``. Each run reuses the collection and starts with an empty response
cache (its own copy), so neither answers from the other's calls. Each measurement is the
command itself, a subprocess: its wall time and CPU-seconds (user + system of the process and
its children), which include the fixed costs of a run (Prefect's temporary server, loading the
model, embedding the explanations for ``search``), the same both ways. Then, from each
warehouse: per unit, the decision (``unit_budget``), the LLM calls and tokens (``unit_spend``),
and the best headline score (``registry.HEADLINE_SCORE``) of any selected explanation but the
shuffled control, under any simulator.

Timings on a shared machine are noisy: the load average before and after is printed; the ratio
comes from two runs made in this one invocation.

With ``--local-dtype int8`` the budget run's local annotators run in int8
(``local_dtype``), and one more run, every annotator in int8 without a budget, shows that part
alone; the shuffled-control-free best score per unit is printed for every run.

With ``--ci-width W`` a third run adds adaptive scoring to the budget (``--ci-width``): its
CPU-seconds against the first run's, and per unit the best score and the windows it rests on.

    OMP_NUM_THREADS=1 python benchmarks/budget_seconds.py [--units 8] [--below 0.3]
        [--escalate 'local/*'] [--max-windows 400] [--keep DIR] [--ci-width W]
        [--local-dtype int8]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb

from neuroscribe.registry import HEADLINE_SCORE


def _cli(warehouse: Path, *args: str) -> tuple[float, float]:
    """Run ``neuroscribe`` on ``warehouse``; (wall seconds, CPU-seconds of the command)."""
    command = [sys.executable, "-m", "neuroscribe", "--warehouse", str(warehouse), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):  # 3: stored, an explainer produced nothing usable
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"{' '.join(args[:1])} failed with status {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _per_unit(warehouse: Path) -> dict[str, dict[str, Any]]:
    """Per unit: the best headline score, the decision, calls and tokens of the one run."""
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        (run_id,) = con.execute(
            "SELECT run_id FROM runs WHERE status = 'finished' AND stage <> 'collect'"
            " ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        best = con.execute(
            "SELECT unit_key, unit_index, max(score), arg_max(explainer || ' x ' || simulator,"
            " score), arg_max(n_windows, score) FROM scored_explanations"
            " WHERE run_id = ? AND score_kind = ? AND selected"
            " AND explainer <> shuffled_control() AND score IS NOT NULL GROUP BY ALL",
            [run_id, HEADLINE_SCORE],
        ).fetchall()
        spend = con.execute(
            "SELECT unit_key, escalated, cheap_score, llm_calls, prompt_tokens,"
            " completion_tokens FROM unit_spend WHERE run_id = ?",
            [run_id],
        ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for key, index, score, pair, windows in best:
        out.setdefault(key, {}).update(index=index, best=score, pair=pair, windows=windows)
    for key, escalated, cheap, calls, prompt, completion in spend:
        out.setdefault(key, {}).update(
            escalated=escalated, cheap=cheap, calls=calls, tokens=prompt + completion
        )
    return out


def _adaptive(
    name: str, ratio: float, full: dict[str, dict[str, Any]], adaptive: dict[str, dict[str, Any]]
) -> None:
    """The run with adaptive scoring against every annotator: CPU, best scores, windows."""
    print(f"\n{name}: CPU-s per unit / every annotator {ratio:.2f} ({1 / ratio:.2f}x fewer)")
    print("| unit | best, every annotator | best, this run | windows of that score |")
    print("|---:|---|---|---:|")
    for key in sorted(full, key=lambda k: full[k].get("index", 0)):
        f, a = full[key], adaptive.get(key, {})
        best = [
            "n/a" if v.get("best") is None else f"{v['best']:+.3f} ({v['pair']})" for v in (f, a)
        ]
        print(f"| {f.get('index')} | {best[0]} | {best[1]} | {a.get('windows', 'n/a')} |")
    defined = [v["best"] for v in adaptive.values() if v.get("best") is not None]
    print(f"mean best headline score per unit: {sum(defined) / max(1, len(defined)):+.3f}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--below", type=float, default=0.3)
    ap.add_argument("--escalate", default="local/*")
    ap.add_argument("--max-windows", type=int, default=400)
    ap.add_argument("--keep", type=Path, help="keep the warehouses in this folder")
    ap.add_argument("--ci-width", type=float, help="a third run: the budget and adaptive scoring")
    ap.add_argument("--local-dtype", help="local annotators' dtype in the budget run (int8)")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="neuroscribe-budget-"))
    folder.mkdir(parents=True, exist_ok=True)
    common = ["--units", str(args.units), "--max-windows", str(args.max_windows)]
    print(f"load average before: {_load()}  OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    base = folder / "collected.duckdb"
    wall, cpu = _cli(base, "collect", *common)
    print(f"collect: {wall:.0f} s wall, {cpu:.0f} CPU-s (not counted below)")
    dtype = args.local_dtype
    dtype_args = ["--explain-local-dtype", dtype, "--simulate-local-dtype", dtype] if dtype else []
    budget_name = f"budget: {args.escalate} below {args.below}" + (f", {dtype}" if dtype else "")
    runs = {
        "every annotator": [],
        budget_name: ["--escalate", args.escalate, "--escalate-below", str(args.below)]
        + dtype_args,
    }
    if args.ci_width is not None:
        adaptive = [*runs[budget_name], "--ci-width", str(args.ci_width)]
        runs[f"{budget_name}, ci_width {args.ci_width}"] = adaptive
    if dtype:
        runs[f"every annotator, {dtype}"] = dtype_args
    figures = {}
    for i, (name, extra) in enumerate(runs.items()):
        warehouse = folder / f"run{i}.duckdb"
        shutil.copy(base, warehouse)
        wall, cpu = _cli(warehouse, "run", *common, *extra)
        figures[name] = (wall, cpu, _per_unit(warehouse))
        print(f"{name}: {wall:.0f} s wall, {cpu:.0f} CPU-s, {cpu / args.units:.1f} CPU-s per unit")
    print(f"load average after: {_load()}")

    (_, (_, full_cpu, full)), (_, (_, budget_cpu, budget)), *others = figures.items()
    third = [(n, f) for n, f in others if "ci_width" in n]
    for name, (_, cpu, per_unit) in figures.items():
        best = [v["best"] for v in per_unit.values() if v.get("best") is not None]
        print(
            f"{name}: {full_cpu / cpu:.2f}x fewer CPU-s than every annotator; mean best"
            f" headline score {sum(best) / max(1, len(best)):+.3f} over {len(best)} units"
        )
    print(
        f"\nCPU-s per unit, budget / every annotator: {budget_cpu / full_cpu:.2f}"
        f" ({full_cpu / budget_cpu:.2f}x fewer)"
    )
    escalated = [k for k, v in budget.items() if v.get("escalated")]
    decided = [k for k, v in budget.items() if "escalated" in v]
    print(f"escalated: {len(escalated)} of {len(decided)} live units")
    print(
        "\n| unit | cheap score | escalated | best, every annotator | best, budget | LLM calls"
        " (every / budget) | tokens (every / budget) |"
    )
    print("|---:|---:|:---:|---|---|---:|---:|")
    keys = sorted(set(full) | set(budget), key=lambda k: (full.get(k) or budget[k]).get("index", 0))

    def fmt(v: dict[str, Any]) -> str:
        return "n/a" if v.get("best") is None else f"{v['best']:+.3f} ({v['pair']})"

    for key in keys:
        f, b = full.get(key, {}), budget.get(key, {})
        cheap = "n/a" if b.get("cheap") is None else f"{b['cheap']:+.3f}"
        flag = "yes" if b.get("escalated") else "no"
        print(
            f"| {f.get('index', b.get('index'))} | {cheap} | {flag}"
            f" | {fmt(f)} | {fmt(b)} | {f.get('calls', 0)} / {b.get('calls', 0)}"
            f" | {f.get('tokens', 0)} / {b.get('tokens', 0)} |"
        )
    defined = [[v["best"] for v in d.values() if v.get("best") is not None] for d in (full, budget)]
    means = [sum(d) / max(1, len(d)) for d in defined]
    print(
        f"\nmean best headline score per unit: every annotator {means[0]:+.3f},"
        f" budget {means[1]:+.3f}"
    )
    for name, (_, cpu, adaptive) in third:
        _adaptive(name, cpu / full_cpu, full, adaptive)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
