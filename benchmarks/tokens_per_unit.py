"""Prompt and completion tokens per unit for explain + simulate, from a run of the pipeline's
stage functions against a local OpenAI-protocol server, beside OpenAI's reference budget of one
explanation call and ten simulation calls per unit.

The server (``llm_server``) counts usage with MiniLM's WordPiece tokenizer, a stand-in for a
GPT tokenizer (no download needed); its answers have the realistic length (one sentence per
explanation sample, one JSON entry per token per simulation). Units are planted units shaped as
the default config collects them (32-token windows; 6 explain windows; 3 samples; best-of-n by
``baseline/lexical``, which makes no call). Prompt tokens per call are the same for OpenAI's
method, so the reference budget is priced with this run's own per-call means.

With ``--local`` the offline default's in-process SmolLM2 annotators run instead (the default
config on planted units, ``llm_local_seconds.run_default``), counted with SmolLM2's own
tokenizer: prompt tokens are those run through the model, and the prefix that the all-at-once
simulator reuses from the previous window's key/value cache is printed apart.

    OMP_NUM_THREADS=1 python benchmarks/tokens_per_unit.py [--units 10] [--local]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_server import ZeroLatencyServer  # noqa: E402
from llm_throughput import planted_units  # noqa: E402

from neuroscribe.config import RunConfig  # noqa: E402
from neuroscribe.explain.units import explain_units  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.simulate import simulate_units  # noqa: E402

NAME = "openai/bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--local", action="store_true", help="the in-process SmolLM2 default")
    args = parser.parse_args()
    if args.local:
        local_tokens(args.units)
        return
    os.environ.pop("NEUROSCRIBE_OPENAI_BASE_URL", None)
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    cfg = RunConfig.model_validate({
        "explain": {"explainers": [NAME], "samples": 3},
        "simulate": {"simulators": [NAME]},
        "score": {"controls": False},
    })
    units, windows = planted_units(args.units)
    clear_response_cache()
    with ZeroLatencyServer(count_tokens=True) as base_url:
        os.environ["OPENAI_BASE_URL"] = base_url
        ledger = Ledger()
        explanations = explain_units(units, windows, cfg, ledger)
        simulate_units(explanations, units, windows, cfg, ledger)
    calls = [c for c in ledger.calls if not c.cache_hit]
    n = args.units
    print(f"{n} units, usage counted with MiniLM's WordPiece tokenizer; "
          f"samples={cfg.explain.samples}, window_tokens=32")
    print(f"{'purpose':<10} {'calls/unit':>10} {'prompt tok/unit':>16} {'compl tok/unit':>15} "
          f"{'prompt/call':>12} {'compl/call':>11}")
    per_call = {}
    for purpose in ("explain", "simulate"):
        cs = [c for c in calls if c.purpose == purpose]
        pt, ct = sum(c.prompt_tokens for c in cs), sum(c.completion_tokens for c in cs)
        per_call[purpose] = (pt / max(1, len(cs)), ct / max(1, len(cs)))
        print(f"{purpose:<10} {len(cs) / n:>10.1f} {pt / n:>16.0f} {ct / n:>15.0f} "
              f"{per_call[purpose][0]:>12.0f} {per_call[purpose][1]:>11.0f}")
    pt, ct = sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls)
    print(f"{'total':<10} {len(calls) / n:>10.1f} {pt / n:>16.0f} {ct / n:>15.0f}")
    ref_pt = per_call["explain"][0] + 10 * per_call["simulate"][0]
    ref_ct = per_call["explain"][1] / cfg.explain.samples + 10 * per_call["simulate"][1]
    print(f"{'OpenAI ref':<10} {11.0:>10.1f} {ref_pt:>16.0f} {ref_ct:>15.0f}   "
          "(1 explanation call, 1 sample + 10 simulation calls, at this run's per-call sizes)")
    print(f"ratio ours / reference: prompt {pt / n / ref_pt:.2f}x, completion "
          f"{ct / n / ref_ct:.2f}x")


def local_tokens(n: int) -> None:
    from llm_local_seconds import run_default

    from neuroscribe.llm.local import PREFIX_TOKENS

    calls, _, cfg = run_default(n)
    calls = [c for c in calls if not c.cache_hit]
    print(f"{n} units, default config (samples={cfg.explain.samples}), in-process "
          f"{cfg.explain.explainers[0]}; tokens counted by its own tokenizer")
    print(f"{'purpose':<10} {'calls/unit':>10} {'prompt tok/unit':>16} {'compl tok/unit':>15}")
    for purpose in ("explain", "simulate"):
        cs = [c for c in calls if c.purpose == purpose]
        pt, ct = sum(c.prompt_tokens for c in cs), sum(c.completion_tokens for c in cs)
        print(f"{purpose:<10} {len(cs) / n:>10.1f} {pt / n:>16.0f} {ct / n:>15.0f}")
    reused = sum(v for (_, kind), v in PREFIX_TOKENS.items() if kind == "reused")
    print(f"simulate prompt tokens not run (prefix key/value reuse): {reused / n:.0f}/unit")


if __name__ == "__main__":
    main()
