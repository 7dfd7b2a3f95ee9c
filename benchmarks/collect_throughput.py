"""Collection throughput as a ratio to a bare forward pass of the same model on the same batches.

For each model and dtype: the same windows, framed and batched exactly as collection does, go
through a bare ``model(input_ids, attention_mask)`` under ``torch.inference_mode`` (no hooks),
then through ``neuroscribe.collect.collect`` over every MLP neuron of every layer
(``collect.site = "layers.*.mlp"``). Both are timed in this one run, alternating (forward,
collect, forward, ... : ``--repeat`` collections, default 3) so that load from other processes
hits both alike; the median time of each is compared. Printed: tokens/s of each and the ratio
collect/forward (target: end to end >= 0.9 in fp32), for the streaming pass alone (to the last
batch) and end to end (with dealing windows into splits and building the records' tables, a
fixed cost per unit that a larger corpus amortises), then the
bf16/fp32 speed-up of each as measured (bf16 runs use fewer tokens, ``--bf16-tokens``: on a CPU
without native bf16, which the first line reports, they are several times slower and the
speed-up is below 1). The corpus is the standard library's docstrings (``stdlib``); collection
reads and tokenizes it inside the timed run, the bare forward pass gets its batches ready-made.
The harvested docstrings are cached on disk after their first read (``corpus.py``), and the
warm-up reads them first, so the timed collection reads the cache, as every collection after a
machine's first does.

    python benchmarks/collect_throughput.py [--models all-minilm-l6-v2 smollm2-135m-instruct]
        [--tokens 20000] [--dtypes float32 bfloat16] [--batch-size 16] [--window-tokens 32]
        [--n-quantile 0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from neuroscribe.collect import collect
from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.sites import site_widths
from neuroscribe.collect.windows import batched, cut_windows, special_frame
from neuroscribe.config import RunConfig
from neuroscribe.models import load_model


def make_config(model: str, dtype: str, windows: int, args: argparse.Namespace) -> RunConfig:
    mlp_width = site_widths(load_model(model, None, dtype).model)[1]
    return RunConfig.model_validate(
        {
            "subject": {"model": model, "dtype": dtype},
            "corpus": {"source": args.corpus, "max_documents": None},
            "collect": {
                "site": "layers.*.mlp",
                "units": mlp_width,
                "window_tokens": args.window_tokens,
                "max_windows": windows,
                "batch_size": args.batch_size,
                "n_quantile": args.n_quantile,
            },
        }
    )


def forward_seconds(cfg: RunConfig) -> float:
    """A bare forward pass of the whole model over collection's batches."""
    loaded = load_model(cfg.subject.model, None, cfg.subject.dtype)
    model, frame = loaded.model, special_frame(loaded.tokenizer)
    c = cfg.collect
    docs = open_corpus(cfg.corpus.source, max_documents=None)
    inputs = [
        frame.wrap(b)
        for b in batched(
            cut_windows(docs, loaded.tokenizer, c.window_tokens, c.max_windows), c.batch_size
        )
    ]
    start = time.perf_counter()
    with torch.inference_mode():
        for ids in inputs:
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return time.perf_counter() - start


def collect_seconds(cfg: RunConfig, checkpoints: str) -> tuple[float, float]:
    """(seconds to the last batch, seconds end to end) of a collection."""
    last = [0.0]
    start = time.perf_counter()
    collect(
        cfg,
        progress=lambda *_: last.__setitem__(0, time.perf_counter()),
        checkpoint_dir=checkpoints,
    )
    return last[0] - start, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["all-minilm-l6-v2", "smollm2-135m-instruct"]
    )
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens per model and dtype")
    parser.add_argument(
        "--bf16-tokens",
        type=int,
        default=5_000,
        help="tokens per bf16 run (slow without native bf16)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="collections per model and dtype, each followed by a bare forward pass (one "
        "more comes first); the medians are compared",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--window-tokens", type=int, default=32)
    parser.add_argument("--corpus", default="stdlib")
    parser.add_argument(
        "--n-quantile", type=int, default=0, help="collect.n_quantile (quantile-bin windows)"
    )
    args = parser.parse_args()
    windows = args.tokens // args.window_tokens
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
        f"{', '.join(native) or 'no'}; {windows} windows of {args.window_tokens} tokens per "
        f"run, batch {args.batch_size}, site layers.*.mlp, n_quantile {args.n_quantile}"
    )
    print(
        f"{'model':<24}{'dtype':<10}{'units':>7}{'fwd tok/s':>11}{'pass tok/s':>12}"
        f"{'e2e tok/s':>11}{'pass/fwd':>10}{'e2e/fwd':>9}"
    )
    rates: dict[tuple[str, str], tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as checkpoints:
        for model in args.models:
            for dtype in args.dtypes:
                n_windows = (
                    windows if dtype == "float32" else args.bf16_tokens // args.window_tokens
                )
                cfg = make_config(model, dtype, n_windows, args)
                forward_seconds(
                    cfg.model_copy(
                        update={
                            "collect": cfg.collect.model_copy(
                                update={"max_windows": 2 * args.batch_size}
                            )
                        }
                    )
                )  # warm-up
                forwards = [forward_seconds(cfg)]
                collects = []
                for _ in range(args.repeat):
                    collects.append(collect_seconds(cfg, checkpoints))
                    forwards.append(forward_seconds(cfg))
                stream = statistics.median(c[0] for c in collects)
                total = statistics.median(c[1] for c in collects)
                n = n_windows * args.window_tokens
                fwd = n / statistics.median(forwards)
                if args.repeat > 1:
                    print(
                        f"  seconds: forward {' '.join(f'{f:.2f}' for f in forwards)}; "
                        f"collection end to end {' '.join(f'{c[1]:.2f}' for c in collects)}",
                        flush=True,
                    )
                rates[model, dtype] = (fwd, n / stream, n / total)
                units = cfg.unit_indices[-1] + 1
                n_sites = load_model(model, None, dtype).model.config.num_hidden_layers
                print(
                    f"{model:<24}{dtype:<10}{units * n_sites:>7}{fwd:>11.0f}{n / stream:>12.0f}"
                    f"{n / total:>11.0f}{n / stream / fwd:>10.2f}{n / total / fwd:>9.2f}",
                    flush=True,
                )
    for model in args.models:
        if (model, "float32") in rates and (model, "bfloat16") in rates:
            a, b = rates[model, "float32"], rates[model, "bfloat16"]
            print(
                f"{model}: bf16/fp32 speed-up measured here: forward {b[0] / a[0]:.2f}, "
                f"collection pass {b[1] / a[1]:.2f}, end to end {b[2] / a[2]:.2f} "
                f"(below 1 means bf16 is slower; without native bf16 it is emulated)"
            )


if __name__ == "__main__":
    main()
