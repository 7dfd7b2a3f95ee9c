"""Calls per second the pipeline sustains against a local OpenAI-protocol server, the
pipeline's own overhead per call, and units per hour through the LLM stages, measured in one run.

Calls per second (``--rounds``): the explainer (``explain_many``) and the JSON simulator
(``simulate_many``) run over planted units exactly as the stages call them, with the response
cache empty so every call is sent. Figures, each the median of ``--rounds`` rounds (the two
concurrencies alternate, so a busy neighbour on a shared machine slows both alike):

- calls/s: calls sent / wall time of explain + simulate;
- overhead per call = mean client latency of a call (``llm_calls.latency_ms``: from the request's
  start to its answer, so hashing, the client, HTTP and decoding; rendering and parsing of the
  answer are around it) minus the server's own mean time per request (from having read the whole
  request to having written the answer). The figure the < 2 ms target is about is the one with
  one request in flight: at concurrency 64 latency also holds the time spent queued behind the
  others, which is waiting, not overhead;
- client CPU per call: CPU seconds of this process (every thread) / calls, which is what bounds
  calls/s once requests overlap (the client is one interpreter, so about one core).

Units per hour (``--scale 512,4096``): for each size, planted units through the LLM stages as a
run does them (``explain_units``, ``simulate_units``, ``fuzz_units``, the default config with
``openai/bench`` as explainer and simulator: 3 samples in one call, best-of-3 by the lexical
simulator, the shuffled control, fuzzing), the ledger writing every call to a DuckDB warehouse
as the flow's does, at ``--concurrency``. Printed: calls, wall time, units per hour, and the time
per unit of each size over that of the first (the target: at most 1.2x at 4,096 over 512).

With ``--server-ms`` the server waits that long before each answer (a real endpoint's latency,
without its CPU): the case where concurrency pays. Against the zero-latency server the client's
own CPU per call bounds both concurrencies alike once that CPU is most of a call.

    OMP_NUM_THREADS=1 python benchmarks/llm_throughput.py [--units 40] [--rounds 3] \
        [--server-ms 200] [--concurrency 64] [--scale 512,4096]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from annotator_fixtures import make_window, planted_unit  # noqa: E402
from llm_server import ZeroLatencyServer  # noqa: E402

from neuroscribe.config import (  # noqa: E402
    AnnotatorConfig,
    ExplainConfig,
    RunConfig,
    SimulateConfig,
)
from neuroscribe.explain import explain_many, make_explainer  # noqa: E402
from neuroscribe.explain.units import explain_units  # noqa: E402
from neuroscribe.llm.aio import transport  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import UnitExamples, Window  # noqa: E402
from neuroscribe.simulate import (  # noqa: E402
    SIMULATED_SPLITS,
    fuzz_units,
    make_simulator,
    simulate_many,
    simulate_units,
)
from neuroscribe.warehouse import connect  # noqa: E402
from neuroscribe.warehouse.calls import save_llm_calls  # noqa: E402
from neuroscribe.warehouse.runs import start_run  # noqa: E402

NAME = "openai/bench"


def planted_units(n_units: int) -> tuple[list[UnitExamples], dict[str, Window]]:
    """``n_units`` planted units with windows of their own (32 tokens; 6 explain windows,
    5 validate, 5 score-top, 5+5 random), as a collection of the default config gives."""
    units, windows = [], {}
    for seed in range(n_units):
        unit, ws = planted_unit(n_explain=6, n_validate=5, n_random=5, length=32, seed=seed)
        renamed = {}
        for old, w in ws.items():
            new = make_window(w.tokens, doc=f"unit{seed}-{w.doc_id}")
            renamed[old] = new.window_id
            windows[new.window_id] = new
        uws = tuple(uw.model_copy(update={"window_id": renamed[uw.window_id]})
                    for uw in unit.windows)
        unit_id = unit.unit.model_copy(update={"index": seed})
        units.append(unit.model_copy(update={"windows": uws, "unit": unit_id}))
    return units, windows


def run(n_units: int, concurrency: int, server: ZeroLatencyServer) -> dict[str, float]:
    clear_response_cache()
    units, windows = planted_units(n_units)
    ann = AnnotatorConfig(concurrency=concurrency)
    ledger = Ledger()
    n0, s0 = server.stats()
    start, cpu0 = time.perf_counter(), time.process_time()
    explainer = make_explainer(NAME, ExplainConfig(samples=1), ledger, ann)
    explanations = explain_many(explainer, units, windows, 1, list(range(n_units)))
    sim = make_simulator(NAME, SimulateConfig(), ledger, ann)
    jobs = [(es[0], [windows[w.window_id] for w in u.in_splits(*SIMULATED_SPLITS)])
            for es, u in zip(explanations, units, strict=True)]
    simulate_many(sim, jobs)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    n1, s1 = server.stats()
    calls = [c for c in ledger.calls if not c.cache_hit]
    assert all(c.status == "ok" for c in calls), [c.error for c in calls if c.error][:3]
    assert n1 - n0 == len(calls), (n1 - n0, len(calls))
    server_ms = (s1 - s0) / max(1, n1 - n0) * 1000
    latency_ms = sum(c.latency_ms for c in calls) / len(calls)
    return {"calls": len(calls), "wall_s": wall, "calls_per_s": len(calls) / wall,
            "latency_ms": latency_ms, "server_ms": server_ms,
            "overhead_ms": latency_ms - server_ms, "cpu_per_call_ms": cpu / len(calls) * 1000}


def stages(n_units: int, concurrency: int, warehouse: Path) -> dict[str, float]:
    """The LLM stages of a run over ``n_units`` planted units, calls written to ``warehouse``."""
    clear_response_cache()
    units, windows = planted_units(n_units)
    cfg = RunConfig.model_validate({
        "explain": {"explainers": [NAME]}, "simulate": {"simulators": [NAME]},
        "annotators": {NAME: {"concurrency": concurrency}},
    })
    con = connect(str(warehouse))
    run_id = f"bench-{n_units}"
    start_run(con, run_id, cfg)
    written = [0]

    def sink(batch: list) -> None:  # as the flow's ledger sink (flows/pipeline.py)
        written[0] += save_llm_calls(con, run_id, batch)

    start, cpu0 = time.perf_counter(), time.process_time()
    with Ledger(sink, flush_every=32, flush_seconds=1.0) as ledger:
        explanations = explain_units(units, windows, cfg, ledger)
        simulations = simulate_units(explanations, units, windows, cfg, ledger)
        scores = fuzz_units(explanations, units, windows, cfg, ledger)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    con.close()
    calls = ledger.drain()
    failed = sum(c.status != "ok" for c in calls)
    assert written[0] == len(calls) and not failed, (written[0], len(calls), failed)
    assert all(s.status == "ok" for s in simulations) and scores
    return {"units": n_units, "calls": len(calls), "wall_s": wall,
            "units_per_hour": n_units / wall * 3600, "s_per_unit": wall / n_units,
            "calls_per_s": len(calls) / wall, "cpu_per_call_ms": cpu / len(calls) * 1000}


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="0: skip the calls/s rounds")
    parser.add_argument("--server-ms", type=float, default=0.0,
                        help="latency the server adds to every answer (0: zero-latency)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scale", default="",
                        help="comma-separated unit counts for units per hour (e.g. 512,4096)")
    args = parser.parse_args()
    os.environ.pop("NEUROSCRIBE_OPENAI_BASE_URL", None)
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    ones, manys, scaled = [], [], []
    with ZeroLatencyServer(latency_s=args.server_ms / 1000) as base_url, \
            tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_BASE_URL"] = base_url
        server = ZeroLatencyServer.__new__(ZeroLatencyServer)
        server.port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        run(4, 4, server)  # warm-up: imports, client, connections
        for _ in range(args.rounds):
            ones.append(run(max(4, args.units // 4), 1, server))
            manys.append(run(args.units, args.concurrency, server))
        for n in [int(x) for x in args.scale.split(",") if x.strip()]:
            scaled.append(stages(n, args.concurrency, Path(tmp) / f"bench-{n}.duckdb"))
    print(f"OpenAI-protocol server (subprocess) adding {args.server_ms:g} ms per answer, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"AsyncOpenAI headers over {transport()}")
    if ones:
        one, many = median_of(ones), median_of(manys)
        print(f"calls/s, medians of {args.rounds} rounds:")
        for label, r in (("concurrency 1", one), (f"concurrency {args.concurrency}", many)):
            print(f"{label:>15}: {r['calls']:5.0f} calls in {r['wall_s']:.2f} s = "
                  f"{r['calls_per_s']:7.1f} calls/s; mean call latency {r['latency_ms']:.2f} ms, "
                  f"server {r['server_ms']:.2f} ms -> latency - server "
                  f"{r['overhead_ms']:.2f} ms; client CPU {r['cpu_per_call_ms']:.2f} ms/call")
        print(f"calls/s at concurrency {args.concurrency} / concurrency 1: "
              f"{many['calls_per_s'] / one['calls_per_s']:.2f}x "
              f"({many['calls_per_s']:.0f} vs {one['calls_per_s']:.0f}); per round: "
              + ", ".join(f"{m['calls_per_s'] / o['calls_per_s']:.2f}x"
                          for o, m in zip(ones, manys, strict=True)))
        print(f"pipeline overhead per call (one in flight): {one['overhead_ms']:.2f} ms "
              f"(target < 2 ms)")
    if scaled:
        print(f"units per hour through explain, simulate and fuzz (default config, "
              f"concurrency {args.concurrency}, calls written to DuckDB):")
        first = scaled[0]
        for r in scaled:
            print(f"{r['units']:>7.0f} units: {r['calls']:7.0f} calls in {r['wall_s']:7.1f} s = "
                  f"{r['calls_per_s']:6.1f} calls/s, {r['units_per_hour']:9.0f} units/hour, "
                  f"{r['s_per_unit'] * 1000:.1f} ms/unit, client CPU "
                  f"{r['cpu_per_call_ms']:.2f} ms/call; time per unit / that at "
                  f"{first['units']:.0f} units: {r['s_per_unit'] / first['s_per_unit']:.2f}x")


if __name__ == "__main__":
    main()
