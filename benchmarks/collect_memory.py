"""Peak memory of a collection over 200k versus 2M tokens: it must not grow with the corpus.

MiniLM (``all-minilm-l6-v2``), every MLP neuron of every layer (6 × 1536 = 9,216 units), windows
of 32 tokens, with quantile-bin windows on (``--n-quantile``, default 2 per bin, 4 bins). Each
size runs in a fresh subprocess, which reports its resident memory after loading the model and
its peak resident memory (``ru_maxrss``) after collecting; printed are both, the growth over the
loaded model, and the ratio of the two peaks.

The corpus: the standard library's docstrings hold fewer than 2M tokens, so a JSONL file is
synthesized deterministically by cycling them, each cycle's documents prefixed with
``copy <n>:`` so that no two windows repeat each other's text (collection passes over repeated
text when it deals splits).

    python benchmarks/collect_memory.py [--tokens 200000 2000000] [--n-quantile 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_corpus(path: Path, tokens: int) -> None:
    from neuroscribe.collect.corpus import module_docstrings, stdlib_files

    docs = [d for d in (module_docstrings(f) for f in stdlib_files()) if d and d.strip()]
    need, written, cycle = tokens * 6, 0, 0  # about 4 characters a token: a safe surplus
    with path.open("w", encoding="utf-8") as fh:
        while written < need:
            for d in docs:
                text = f"copy {cycle}: {d}"
                fh.write(json.dumps({"text": text}) + "\n")
                written += len(text)
            cycle += 1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(tokens: int, corpus: str, checkpoints: str, n_quantile: int) -> None:
    from neuroscribe.collect import collect
    from neuroscribe.config import RunConfig
    from neuroscribe.models import load_model

    cfg = RunConfig.model_validate(
        {
            "subject": {"model": "all-minilm-l6-v2"},
            "corpus": {"source": corpus, "max_documents": None},
            "collect": {
                "site": "layers.*.mlp",
                "units": 1536,
                "window_tokens": 32,
                "max_windows": tokens // 32,
                "batch_size": 16,
                "n_quantile": n_quantile,
            },
        }
    )
    load_model("all-minilm-l6-v2")
    loaded = rss_mb()
    start = time.perf_counter()
    result = collect(cfg, checkpoint_dir=checkpoints)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tokens": result.n_windows * 32,
                "units": len(result.units),
                "loaded_mb": loaded,
                "peak_mb": peak,
                "seconds": seconds,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument(
        "--n-quantile", type=int, default=2, help="collect.n_quantile (quantile-bin windows)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.corpus, args.checkpoints, args.n_quantile)
        return
    print(f"n_quantile {args.n_quantile}; each size in a fresh subprocess", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        write_corpus(corpus, max(args.tokens))
        rows = []
        for tokens in args.tokens:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(tokens),
                        "--corpus",
                        str(corpus),
                        "--checkpoints",
                        tmp,
                        "--n-quantile",
                        str(args.n_quantile),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            rows.append(json.loads(out))
            r = rows[-1]
            print(
                f"{r['tokens']:>9} tokens, {r['units']} units: "
                f"model loaded {r['loaded_mb']:.0f} MB, "
                f"peak {r['peak_mb']:.0f} MB (+{r['peak_mb'] - r['loaded_mb']:.0f} MB over the "
                f"loaded model), {r['seconds']:.0f} s",
                flush=True,
            )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(
            f"peak ratio {b['tokens']}/{a['tokens']} tokens: {b['peak_mb'] / a['peak_mb']:.3f}; "
            f"growth over the loaded model: "
            f"{(b['peak_mb'] - b['loaded_mb']) / (a['peak_mb'] - a['loaded_mb']):.3f}"
        )


if __name__ == "__main__":
    main()
