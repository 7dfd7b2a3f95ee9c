"""Calls per second the pipeline sustains against a zero-latency local OpenAI-protocol server,
and the pipeline's own overhead per call, measured in one run.

The explainer (``explain_all``) and the JSON simulator (``simulate_all``) run over planted
units exactly as the stages call them, with the response cache empty so every call is sent.
Overhead per call = mean client latency of a call (``llm_calls.latency_ms``: render, hash,
client, HTTP, parse) minus the server's own mean time per request; measured once with one
request in flight (the true cost of a call) and once at concurrency 32 (which on a 2-core
machine adds waiting for the interpreter lock and the CPU).

    OMP_NUM_THREADS=1 python benchmarks/llm_throughput.py [--units 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from annotator_fixtures import make_window, planted_unit  # noqa: E402
from llm_server import ZeroLatencyServer  # noqa: E402

from neuroscribe.config import AnnotatorConfig, ExplainConfig, SimulateConfig  # noqa: E402
from neuroscribe.explain import explain_all, make_explainer  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.registry import clear_response_cache  # noqa: E402
from neuroscribe.records import UnitExamples, Window  # noqa: E402
from neuroscribe.simulate import make_simulator, simulate_all  # noqa: E402
from neuroscribe.stages import SIMULATED_SPLITS  # noqa: E402

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
    start = time.perf_counter()
    explainer = make_explainer(NAME, ExplainConfig(samples=1), ledger, ann)
    explanations = explain_all(explainer, units, windows, 1, list(range(n_units)))
    sim = make_simulator(NAME, SimulateConfig(), ledger, ann)
    jobs = [(es[0], [windows[w.window_id] for w in u.in_splits(*SIMULATED_SPLITS)])
            for es, u in zip(explanations, units, strict=True)]
    simulate_all(sim, jobs)
    wall = time.perf_counter() - start
    n1, s1 = server.stats()
    calls = [c for c in ledger.calls if not c.cache_hit]
    assert all(c.status == "ok" for c in calls), [c.error for c in calls if c.error][:3]
    server_ms = (s1 - s0) / max(1, n1 - n0) * 1000
    latency_ms = sum(c.latency_ms for c in calls) / len(calls)
    return {"calls": len(calls), "wall_s": wall, "calls_per_s": len(calls) / wall,
            "latency_ms": latency_ms, "server_ms": server_ms,
            "overhead_ms": latency_ms - server_ms, "wall_per_call_ms": wall / len(calls) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=40)
    args = parser.parse_args()
    os.environ.pop("NEUROSCRIBE_OPENAI_BASE_URL", None)
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    with ZeroLatencyServer() as base_url:
        os.environ["OPENAI_BASE_URL"] = base_url
        server = ZeroLatencyServer.__new__(ZeroLatencyServer)
        server.port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        run(2, 4, server)  # warm-up: imports, client, connections
        one = run(max(4, args.units // 8), 1, server)
        many = run(args.units, 32, server)
    print(f"zero-latency OpenAI-protocol server (subprocess), {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for label, r in (("concurrency 1", one), ("concurrency 32", many)):
        print(f"{label:>15}: {r['calls']:5d} calls in {r['wall_s']:.2f} s = "
              f"{r['calls_per_s']:7.1f} calls/s; mean call latency {r['latency_ms']:.2f} ms, "
              f"server {r['server_ms']:.2f} ms -> pipeline overhead {r['overhead_ms']:.2f} ms/call "
              f"(wall per call {r['wall_per_call_ms']:.2f} ms)")
    print(f"sustained at concurrency 32: {many['calls_per_s']:.0f} calls/s; overhead per call "
          f"(one in flight): {one['overhead_ms']:.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
