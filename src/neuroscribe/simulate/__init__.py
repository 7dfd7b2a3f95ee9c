"""Simulators: predict a unit's per-token activations from an explanation alone.

``make_simulator(name, cfg)`` picks the method from the backend's capabilities, never from the
model's name: next-token distributions inside the prompt -> all-at-once (exact, one forward pass
per window); otherwise JSON answers. ``baseline/lexical`` needs no LLM.
"""

from __future__ import annotations

from neuroscribe.config import SimulateConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.registry import LLM_BACKENDS, make_backend, split_name
from neuroscribe.prompts import load_prompt
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator
from neuroscribe.simulate.base import SimulateFailure, Simulator
from neuroscribe.simulate.json_mode import JsonSimulator
from neuroscribe.simulate.lexical import LexicalSimulator

BASELINE_SIMULATORS = ("baseline/lexical",)

__all__ = ["SimulateFailure", "Simulator", "make_simulator"]


def make_simulator(name: str, cfg: SimulateConfig, ledger: Ledger | None = None) -> Simulator:
    """The simulator named ``backend/model``; ValueError naming the valid backends otherwise."""
    backend, _ = split_name(name)
    if backend == "baseline":
        if name not in BASELINE_SIMULATORS:
            raise ValueError(f"unknown baseline simulator '{name}'; valid: {BASELINE_SIMULATORS}")
        return LexicalSimulator()
    if backend not in LLM_BACKENDS:
        valid = ", ".join((*LLM_BACKENDS, "baseline"))
        raise ValueError(f"unknown simulator backend '{backend}' in '{name}'; valid: {valid}")
    # The backend is built before the prompt is known to be right for it; both are cheap.
    probe = make_backend(name, None, "simulate", local_dtype=cfg.local_dtype)
    if probe.capabilities.prompt_distributions:
        prompt = load_prompt("simulate_all_at_once")
        backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype)
        return AllAtOnceSimulator(name, backend, prompt)
    prompt = load_prompt("simulate_json")
    backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype)
    return JsonSimulator(name, backend, prompt)
