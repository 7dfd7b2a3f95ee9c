"""Memory and time of ``neuroscribe compare``, measured in one run.

(a) Memory: the comparison pass over N and over 10 N tokens, each under ``tracemalloc``, which
sees the accumulators (numpy-allocated: float64 totals and their float32 buffers; one
``Moments`` per subject and site, its sums and squares, or its Gram matrix when every site pair
fits ``compare.cka_budget_mb``; one ``CrossProducts`` per accumulated site pair)
and every other Python/numpy allocation of the pass, but not torch's own tensors (the model, its
activations and each batch's products, the same at any corpus size). Printed: both peaks, their
ratio (the issue wants at most 1.1) and the accumulators' own size, for comparison; plus the
process's peak RSS.

(b) Time: the compare pass (``compare_subjects``: windows cut, each subject's forward pass to its
last compared site, the accumulators updated, units matched) on the 10 N run, untraced, over the
sum of the bare forward passes of the subjects (``model.base_model`` under inference mode, no
hooks, the whole model) on the same windows, framed and batched as compare does, timed before and
after it (the mean of the two, so that load from other processes hits both alike). The bare
passes get their batches ready-made; compare cuts and tokenizes inside its timed run. The issue
wants at most 1.3. The matching step (Hungarian per matched pair), a fixed cost that does not
grow with the corpus, is timed apart on random r of the same shapes, and the ratio printed
without it too.

Subjects: by default the embedded ``all-minilm-l6-v2`` twice (the same weights, so every unit is
matched: the work is the same as for two seeds), every MLP neuron of every layer (6 x 1536). The
corpus: the standard library's docstrings cycled into a JSONL file (``collect_memory.py``).

    python benchmarks/compare_memory_time.py [--tokens 1024] [--model A --model B]
        [--site 'layers.*.mlp'] [--window-tokens 32] [--batch-size 16] [--max-stat-tokens K]
        [--exact] [--perturb SIGMA] [--memory-only]
    python benchmarks/compare_memory_time.py --tokens 20000 --exact --perturb 0.3  # 200k: time
    python benchmarks/compare_memory_time.py --tokens 200000 --memory-only        # 200k and 2M

Statistics are read on at most ``compare.max_stat_tokens`` token positions (every k-th position
of each window) unless ``--max-stat-tokens`` says otherwise; ``--exact`` times the run on every
position as well and prints how far its matches are from the sampled ones (with ``--perturb``,
a noisy copy as the second subject, so that partners are not exact).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_memory import write_corpus  # noqa: E402

from neuroscribe.collect.corpus import open_corpus  # noqa: E402
from neuroscribe.collect.windows import batched, cut_windows  # noqa: E402
from neuroscribe.compare.stream import Comparison, compare_subjects, match_units  # noqa: E402
from neuroscribe.compare.subjects import LoadedSubject, load_subjects  # noqa: E402
from neuroscribe.config import RunConfig  # noqa: E402


def make_config(
    args: argparse.Namespace, corpus: Path, tokens: int, exact: bool = False
) -> RunConfig:
    stat_tokens = 0 if exact else args.max_stat_tokens
    return RunConfig.model_validate(
        {
            "corpus": {"source": str(corpus), "max_documents": None},
            "collect": {
                "site": args.site,
                "window_tokens": args.window_tokens,
                "max_windows": max(1, tokens // args.window_tokens),
                "batch_size": args.batch_size,
            },
            "compare": {"models": args.model, "max_stat_tokens": stat_tokens},
        }
    )


def traced_compare(cfg: RunConfig) -> tuple[Comparison, int, float]:
    """The comparison, tracemalloc's peak (bytes) during it, and its seconds."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        result = compare_subjects(cfg)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, seconds


def bare_forward_seconds(subject: LoadedSubject, cfg: RunConfig) -> float:
    """One subject's whole forward pass, no hooks, on the windows compare reads."""
    c = cfg.collect
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    batches = [
        subject.frame.wrap(b).to(subject.model.device)
        for b in batched(
            cut_windows(docs, subject.tokenizer, c.window_tokens, c.max_windows), c.batch_size
        )
    ]
    start = time.perf_counter()
    with torch.inference_mode():
        for ids in batches:
            subject.model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return time.perf_counter() - start


def matching_seconds(result: Comparison) -> float:
    """Seconds of the matching step alone (best partners both ways, Hungarian) on random r of
    the matched pairs' shapes: the part of the compare pass that does not grow with tokens."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for p in result.pairs:
        if p.matches is not None:
            match_units(rng.uniform(-1, 1, (p.n_a, p.n_b)))
    return time.perf_counter() - start


def perturbed_copy(model: str, sigma: float, folder: Path) -> str:
    """``model`` with Gaussian noise of ``sigma`` times each weight matrix's own standard
    deviation added to every 2-d weight, saved to ``folder``: a stand-in for another seed whose
    units correlate with the original's below 1, so the matches are not trivially exact."""
    from neuroscribe.models import load_model

    lm = load_model(model, None, "float32")
    copy = deepcopy(lm.model)  # the loaded model is cached for the process: leave it as it is
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in copy.parameters():
            if w.ndim == 2:
                w.add_(torch.randn(w.shape, generator=gen) * sigma * w.std())
    copy.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return str(folder)


def sampling_cost(sampled: Comparison, exact: Comparison, threshold: float) -> str:
    """How far the matches from sampled positions are from those from every position: the
    share of units whose best partner is the same, the median, 99th percentile and largest
    difference of a best partner's r, the units on the other side of the threshold, and the
    largest difference of a site pair's CKA."""
    same = total = flipped = 0
    diffs: list[np.ndarray] = []
    dcka = 0.0
    for s, e in zip(sampled.pairs, exact.pairs, strict=True):
        dcka = max(dcka, abs(s.cka - e.cka))
        if s.matches is None or e.matches is None:
            continue
        best = np.array(s.matches.kind) == "best_a"
        same += int((s.matches.unit_b[best] == e.matches.unit_b[best]).sum())
        total += int(best.sum())
        rs, re_ = s.matches.r[best], e.matches.r[best]
        both = np.isfinite(rs) & np.isfinite(re_)
        diffs.append(np.abs(rs[both] - re_[both]))
        flipped += int(((rs[both] >= threshold) != (re_[both] >= threshold)).sum())
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    return (f"same best partner for {same}/{total} units ({same / max(total, 1):.4f}); "
            f"|r difference| of a best partner: median {np.median(d):.4f}, 99th percentile "
            f"{np.quantile(d, 0.99):.4f}, largest {d.max():.4f}; {flipped} units on the other "
            f"side of r = {threshold}; largest |CKA difference| {dcka:.4f}")


def accumulator_bytes(result: Comparison, subjects: list[LoadedSubject]) -> int:
    """The totals (float64) and their float32 buffers (``stats.FLUSH_TOKENS``): the
    cross-products of each pair accumulated whole (the matched pairs, and every pair within
    ``compare.cka_budget_mb``), each subject's sites' Gram matrices (kept only then); sums and
    squares."""
    widths = [site.width for s in subjects for site in s.sites]
    accumulated = [p for p in result.pairs if p.matches is not None or p.cka_method == "corpus"]
    grams = sum(w * w for w in widths) if result.all_site_pairs else 0
    matrices = sum(p.n_a * p.n_b for p in accumulated) + grams
    return (8 + 4) * matrices + 8 * 2 * sum(widths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=1024, help="N: the small run; the large is 10 N")
    ap.add_argument("--model", action="append", help="a subject (repeat); default MiniLM twice")
    ap.add_argument("--site", default="layers.*.mlp")
    ap.add_argument("--window-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--max-stat-tokens",
        type=int,
        default=RunConfig().compare.max_stat_tokens,
        help="compare.max_stat_tokens (default: the config's)",
    )
    ap.add_argument(
        "--exact",
        action="store_true",
        help="also time compare on every position (max_stat_tokens 0) on the "
        "large corpus, and say how far its matches are from the sampled ones",
    )
    ap.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        help="compare the first model with a copy of it with this much noise on its "
        "weights (relative to each matrix's spread) instead of a second --model",
    )
    ap.add_argument("--memory-only", action="store_true", help="(a) only: no timing runs")
    args = ap.parse_args()
    args.model = args.model or ["all-minilm-l6-v2", "all-minilm-l6-v2"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.perturb:
            args.model = [
                args.model[0],
                perturbed_copy(args.model[0], args.perturb, Path(tmp) / "perturbed"),
            ]
        corpus = Path(tmp) / "corpus.jsonl"
        write_corpus(corpus, 10 * args.tokens)
        small, large = (make_config(args, corpus, n) for n in (args.tokens, 10 * args.tokens))
        subjects = load_subjects(large)  # loads (cached per process) and checks, untimed
        torch.set_grad_enabled(False)
        warm = make_config(args, corpus, args.window_tokens * args.batch_size)
        compare_subjects(warm)  # first-call costs out of every figure
        r_small, peak_small, _ = traced_compare(small)
        r_large, peak_large, _ = traced_compare(large)
        if not args.memory_only:
            # forward, compare, forward: load from other processes hits both alike
            before = [bare_forward_seconds(s, large) for s in subjects]
            start = time.perf_counter()
            compare_subjects(large)
            compare_s = time.perf_counter() - start
            if args.exact:
                start = time.perf_counter()
                r_exact = compare_subjects(make_config(args, corpus, 10 * args.tokens, True))
                exact_s = time.perf_counter() - start
            after = [bare_forward_seconds(s, large) for s in subjects]
            forward_s = [(b + a) / 2 for b, a in zip(before, after, strict=True)]
            match_s = matching_seconds(r_large)
    n_small, n_large = (cfg.collect.max_windows * args.window_tokens for cfg in (small, large))
    read_small, read_large = r_small.pairs[0].n_tokens, r_large.pairs[0].n_tokens
    mib = 2**20
    print(
        f"subjects: {', '.join(args.model)}; sites {args.site}; {len(r_large.pairs)} site "
        f"pairs ({'all' if r_large.all_site_pairs else 'same-site only'}); "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        "accumulators (cross-products of the accumulated pairs, Gram matrices when kept; "
        f"float64 + float32 buffers): "
        f"{accumulator_bytes(r_large, subjects) / mib:.1f} MiB"
    )
    print(
        f"statistics read on {read_small} of {n_small} and {read_large} of {n_large} token "
        f"positions (compare.max_stat_tokens {args.max_stat_tokens})"
    )
    print(
        f"(a) tracemalloc peak of the compare pass: {n_small} tokens {peak_small / mib:.1f} MiB, "
        f"{n_large} tokens {peak_large / mib:.1f} MiB; ratio {peak_large / peak_small:.3f} "
        "(issue: <= 1.1)"
    )
    print(
        f"    peak RSS of the process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    if args.memory_only:
        return
    print(
        f"(b) compare pass on {n_large} tokens: {compare_s:.2f} s; bare forward passes: "
        + " + ".join(f"{s:.2f}" for s in forward_s)
        + f" = {sum(forward_s):.2f} s; ratio {compare_s / sum(forward_s):.2f} (issue: <= 1.3)"
    )
    stream_s = compare_s - match_s
    print(
        f"    of which matching (random r of the same shapes) {match_s:.2f} s; the streaming "
        f"pass alone {stream_s:.2f} s, ratio {stream_s / sum(forward_s):.2f}"
    )
    print(
        f"    throughput: compare {n_large / compare_s:.0f} tokens/s, bare forward (all "
        f"subjects) {n_large / sum(forward_s):.0f} tokens/s"
    )
    if args.exact:
        print(
            f"(c) every position (max_stat_tokens 0): {exact_s:.2f} s, ratio "
            f"{exact_s / sum(forward_s):.2f}; sampled vs every position: "
            f"{sampling_cost(r_large, r_exact, large.compare.threshold)}"
        )


if __name__ == "__main__":
    main()
