"""Forward-pass throughput of a model in float32 and bfloat16 on this machine, as a ratio.

Whether bf16 pays depends on the CPU: with native bf16 (AVX512-BF16 or AMX) it is several times
faster; on an AVX2-only CPU it is emulated and slower. Run:

    python benchmarks/forward_dtype.py [--model smollm2-135m-instruct] [--tokens 64 300 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from neuroscribe.models import load_model


def tokens_per_second(model: torch.nn.Module, length: int, repeats: int) -> float:
    ids = torch.randint(0, 1000, (1, length))
    with torch.inference_mode():
        model(input_ids=ids)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=ids)
    return repeats * length / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 300, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native bf16: {', '.join(native) or 'no'}")
    fp32 = load_model(args.model, None, "float32").model
    bf16 = load_model(args.model, None, "bfloat16").model
    print(f"{'tokens':>7} {'fp32 tok/s':>11} {'bf16 tok/s':>11} {'bf16/fp32':>10}")
    for n in args.tokens:
        a = tokens_per_second(fp32, n, args.repeats)
        b = tokens_per_second(bf16, n, args.repeats)
        print(f"{n:>7} {a:>11.0f} {b:>11.0f} {b / a:>10.2f}")


if __name__ == "__main__":
    main()
