"""Simulators: predict a unit's per-token activations from an explanation alone.

``make_simulator(name, cfg)`` builds the simulator registered under ``name`` in
``registry.SIMULATORS``: an LLM backend's (``simulate.llm``: all-at-once with next-token
distributions, else JSON answers), ``baseline/lexical`` or ``embedding/all-minilm-l6-v2``.
Each plug-in also makes its fuzz judge (``make_fuzz_judge``). ``simulate_units`` and
``fuzz_units`` run them over a run's explanations, concurrently up to the annotator's limit.
"""

from neuroscribe.simulate.base import BasicSimulator, SimulateFailure, Simulator, SimulatorBase
from neuroscribe.simulate.fuzz import FuzzJudgeBase
from neuroscribe.simulate.plugin import (
    NoFuzzJudge,
    SimulatorPlugin,
    make_fuzz_judge,
    make_simulator,
)
from neuroscribe.simulate.units import SIMULATED_SPLITS, fuzz_units, simulate_many, simulate_units

__all__ = [
    "SIMULATED_SPLITS", "BasicSimulator", "FuzzJudgeBase", "NoFuzzJudge", "SimulateFailure",
    "Simulator", "SimulatorBase", "SimulatorPlugin",
    "fuzz_units", "make_fuzz_judge", "make_simulator", "simulate_many",
    "simulate_units",
]
