"""Units per hour of ``neuroscribe run`` for a set of annotators, measured in one process run.

Each measurement is the ``run`` command itself (a subprocess, output not a terminal, so
progress comes as timestamped lines), on a fresh warehouse: wall time, lines printed, and each
stage's time from its progress lines. Three parts, each optional:

- ``--units 512,4096``: the same sites at two sizes (``--sites`` sites, the count split evenly
  between them); prints seconds per unit at each size and their ratio, also per stage. The
  fixed costs (starting Prefect, loading the model, the forward pass over the corpus) are
  shared by more units at 4,096, so the whole-run ratio flatters the larger run: the stage
  ratios (explain, simulate, fuzz, score) say whether the per-unit work itself scales.
- ``--catalogue``: every MLP neuron of ``--catalogue-model`` (``--units all``) on
  ``--windows`` windows: wall time and lines printed.
- ``--project N``: every MLP neuron of the subject (N of them) on ``--tokens`` tokens, projected
  from the two sizes of ``--units`` run on that many tokens: time = a + b x units fitted through
  the two runs (a: what does not grow with units). Printed as projected, never as run.
  Collection runs the model only up to the last collected site, so for a projection to every
  layer ``--sites`` must be the model's number of layers (30 for SmolLM2-135M): with fewer, the
  fixed part leaves out most of the forward pass and the projection is far too low.

``--tiny-local`` builds a two-layer Llama with random weights and the embedded SmolLM2's
tokenizer (hidden size 64) and runs it as the ``local/...`` explainer, simulator and fuzz judge
(with ``baseline/ngram`` and ``baseline/lexical``, as the default pairs them): every step of the
in-process path (prompts, chat template, batching, prefix cache, generation, the ledger) with
almost none of SmolLM2's arithmetic. A model's arithmetic per unit does not depend on how many
units a run has, so SmolLM2's ratio of time per unit lies between 1 and the one measured here:
the pipeline's own per-unit cost is what could grow with the run, and here it is most of the
time. Its explanations are random words; only the times mean anything.

``--annotators`` names the annotators: each is an explainer, a simulator or both, as the
registries say (``local/...`` and ``openai/...`` are both). Timings on a shared machine are
noisy; every ratio printed comes from runs made in this one invocation.

    python benchmarks/units_per_hour.py --annotators baseline/ngram,baseline/lexical \\
        --model all-minilm-l6-v2 --units 512,4096 --windows 2000 --catalogue
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from neuroscribe.registry import EXPLAINERS, SIMULATORS

STAGE_LINE = re.compile(
    r"^(?:\d\d:\d\d:\d\d )?(\w+)(?:\s+\S+)?: \d+(?:/\d+)? in (\d+):(\d\d):(\d\d)$"
)
"""A progress task's last line off a terminal: ``12:00:01 score: 1522/1522 in 0:00:09``."""


@dataclass
class Measured:
    units: str
    wall_s: float
    cpu_s: float
    """CPU seconds (user + system) of the run and its children: on a shared machine a steadier
    measure than wall time, which counts the time other programs had the cores."""
    lines: int
    stages: dict[str, float] = field(default_factory=dict)


def roles(names: list[str]) -> tuple[list[str], list[str]]:
    """(explainers, simulators) among ``names``, as the plug-in registries know them."""
    explainers, simulators = [], []
    for name in names:
        for table, out in ((EXPLAINERS, explainers), (SIMULATORS, simulators)):
            try:
                table.check(name)
            except ValueError:
                continue
            out.append(name)
    if not explainers or not simulators:
        sys.exit(f"--annotators needs an explainer and a simulator; got {names}")
    return explainers, simulators


def run(args: argparse.Namespace, model: str, sites: str, units: str, windows: int,
        workdir: Path) -> Measured:
    explainers, simulators = roles(args.annotators.split(","))
    warehouse = workdir / f"w-{model.replace('/', '_')}-{units}-{windows}.duckdb"
    command = [
        sys.executable, "-m", "neuroscribe", "--warehouse", str(warehouse), "run",
        "--model", model, "--site", sites, "--units", units, "--max-windows", str(windows),
        "--max-documents", str(args.max_documents),
        "--explainers", ",".join(explainers), "--simulators", ",".join(simulators),
        "--select-with", simulators[0], *args.extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    stages: dict[str, float] = {}
    for line in done.stderr.splitlines():
        m = STAGE_LINE.match(line.strip())
        if m:
            name = m.group(1)
            stages[name] = stages.get(name, 0.0) + int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])
    lines = len(done.stdout.splitlines()) + len(done.stderr.splitlines())
    return Measured(units, wall, cpu, lines, stages)


def tiny_llama(directory: Path) -> Path:
    """A two-layer Llama with random weights (seeded) and the embedded SmolLM2's tokenizer and
    chat template, saved where ``local/<directory>`` loads it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from neuroscribe.models import resolve_source

    source = resolve_source("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(source.directory, gguf_file=source.gguf_file)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def site_list(n_sites: int) -> str:
    return ",".join(f"layers.{i}.mlp" for i in range(n_sites))


def scaling(args: argparse.Namespace, workdir: Path, windows: int) -> list[tuple[int, Measured]]:
    sizes = [int(x) for x in args.units.split(",")]
    out = []
    for n in sizes:
        per_site = n // args.sites
        m = run(args, args.model, site_list(args.sites), str(per_site), windows, workdir)
        out.append((per_site * args.sites, m))
        print(f"{args.model}: {per_site * args.sites} units ({args.sites} sites x {per_site}), "
              f"{windows} windows: {m.wall_s:.0f} s wall ({m.cpu_s:.0f} CPU-s), "
              f"{m.wall_s / (per_site * args.sites):.3f} s/unit, "
              f"{3600 * per_site * args.sites / m.wall_s:,.0f} units/hour, "
              f"{m.lines} lines; stages (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in m.stages.items()), flush=True)
    if len(out) >= 2:
        (n0, a), (n1, b) = out[0], out[-1]
        print(f"time per unit at {n1} / at {n0}: {(b.wall_s / n1) / (a.wall_s / n0):.2f} wall, "
              f"{(b.cpu_s / n1) / (a.cpu_s / n0):.2f} CPU (whole run)")
        for stage in a.stages:
            if stage in b.stages and a.stages[stage] > 0:
                ratio = (b.stages[stage] / n1) / (a.stages[stage] / n0)
                print(f"  {stage:<9} per unit at {n1} / at {n0}: {ratio:.2f}"
                      f" ({a.stages[stage]:.0f} s -> {b.stages[stage]:.0f} s)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", default="baseline/ngram,baseline/lexical")
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--units", default="512,4096", help="sizes, comma-separated ('' to skip)")
    parser.add_argument("--sites", type=int, default=4, help="MLP sites the units spread over")
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--max-documents", type=int, default=2000)
    parser.add_argument("--catalogue", action="store_true", help="every MLP neuron of the model")
    parser.add_argument("--catalogue-model", default="all-minilm-l6-v2")
    parser.add_argument("--project", type=int, default=0,
                        help="project to this many units at --tokens tokens (e.g. 46080)")
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--window-tokens", type=int, default=32)
    parser.add_argument("--tiny-local", action="store_true",
                        help="a random two-layer Llama as the local annotator (see above)")
    parser.add_argument("extra", nargs="*", help="more `run` options, after --")
    args = parser.parse_args()
    args.extra = [*args.extra, "--window-tokens", str(args.window_tokens)]
    with tempfile.TemporaryDirectory(prefix="units-per-hour-") as tmp:
        workdir = Path(tmp)
        if args.tiny_local:
            tiny = tiny_llama(workdir / "tiny-llama")
            args.annotators = f"baseline/ngram,baseline/lexical,local/{tiny}"  # lexical selects
            print(f"annotators: {args.annotators} (random weights: times only)", flush=True)
        if args.units and not args.project:
            scaling(args, workdir, args.windows)
        if args.catalogue:
            m = run(args, args.catalogue_model, "layers.*.mlp", "all", args.windows, workdir)
            print(f"catalogue {args.catalogue_model}, every MLP neuron, {args.windows} windows: "
                  f"{m.wall_s:.0f} s wall ({m.cpu_s:.0f} CPU-s), {m.lines} lines printed; "
                  "stages (s): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in m.stages.items()), flush=True)
        if args.project:
            windows = -(-args.tokens // args.window_tokens)
            args.max_documents = max(args.max_documents, 1_000_000)
            (n0, a), (n1, b) = scaling(args, workdir, windows)[:2]
            slope = (b.wall_s - a.wall_s) / (n1 - n0)
            fixed = a.wall_s - slope * n0
            total = fixed + slope * args.project
            print(f"PROJECTED (not run): {args.project} units of {args.model} on {args.tokens:,}"
                  f" tokens: {total / 60:.0f} min ({fixed:.0f} s fixed + {slope:.3f} s/unit, "
                  f"fitted through the {n0}- and {n1}-unit runs above)")


if __name__ == "__main__":
    main()
